rule prepare_dataset:
    # A local rule: on a cluster it runs where the internet is (the login node).
    input:
        lib("prepare_dataset.py"),
    output:
        "results/{dataset}/data.npz",
    log:
        "logs/{dataset}/prepare_dataset.log",
    localrule: True
    conda:
        ENV_ANALYSIS
    params:
        options=lambda wildcards: dataset_options(wildcards.dataset),
        root="resources/datasets",
    script:
        "../scripts/prepare_dataset.py"
