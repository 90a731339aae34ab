rule prepare_dataset:
    # A local rule: on a cluster it runs where the internet is (the login node).
    output:
        "results/{dataset}/data.npz",
    log:
        "logs/{dataset}/prepare_dataset.log",
    localrule: True
    conda:
        ENV
    params:
        options=lambda wildcards: dataset_options(wildcards.dataset),
        root="resources/datasets",
        library_code=code("prepare_dataset.py"),
    script:
        "../scripts/prepare_dataset.py"
