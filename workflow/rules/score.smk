rule train_classifier:
    # The domain classifier whose features give IS / FID / KID that mean something for digits.
    input:
        data=DATASET_FILES["data"],
    output:
        weights=DATASET_FILES["classifier"],
        summary=DATASET_FILES["classifier_summary"],
    log:
        "logs/{dataset}/train_classifier.log",
    conda:
        ENV
    params:
        classifier=config["scoring"]["classifier"],
        # Scored at this size (null: the images' own): the classifier sees its images so.
        image_size=config["scoring"].get("image_size"),
        device=DEVICE,
        library_code=code("train_classifier.py"),
    script:
        "../scripts/train_classifier.py"


rule inception_weights:
    # A local rule: fetches torch-fidelity's Inception-v3 weights once, where there is internet.
    # Offline with `mode: auto` it records why the Inception metrics are not computed.
    # `provided` names the weights files the user has put in place (with size and mtime): a file
    # added after an offline run changes it, so Snakemake's params trigger reruns this rule and
    # the scoring after it. The rule's own downloads do not change it (they go to downloaded/).
    output:
        f"{INCEPTION_RESOURCES}/status.json",
    log:
        "logs/inception_weights.log",
    localrule: True
    conda:
        ENV
    params:
        inception=INCEPTION,
        resources_dir=lambda wildcards, output: os.path.dirname(output[0]),
        provided=inception_weights_provided,
        library_code=code("inception_weights.py"),
    script:
        "../scripts/inception_weights.py"


rule real_floor:
    # Metrics between two disjoint real sets of the generated set's size, and the reference
    # statistics of the test set, cached once for every run of the dataset.
    input:
        data=DATASET_FILES["data"],
        classifier=DATASET_FILES["classifier"],
        inception=f"{INCEPTION_RESOURCES}/status.json",
    output:
        floor=DATASET_FILES["floor"],
        cache=directory(DATASET_FILES["reference_cache"]),
    log:
        "logs/{dataset}/real_floor.log",
    conda:
        ENV
    params:
        scoring=config["scoring"],
        num_samples=config["sampling"]["num_samples"],
        device=DEVICE,
        library_code=code("real_floor.py"),
    script:
        "../scripts/real_floor.py"


rule score:
    # One job per cell, like sampling: the seeds share the scorer's start-up.
    input:
        samples=cell_runs("samples.npz"),
        data=DATASET_FILES["data"],
        classifier=DATASET_FILES["classifier"],
        inception=f"{INCEPTION_RESOURCES}/status.json",
        floor=DATASET_FILES["floor"],
        cache=DATASET_FILES["reference_cache"],
    output:
        metrics=cell_runs("metrics.json"),
    log:
        f"logs/{{dataset}}/score/{CELL}.log",
    benchmark:
        benchmark_file("score", CELL)
    conda:
        ENV
    params:
        scoring=config["scoring"],
        device=DEVICE,
        library_code=code("score.py"),
    script:
        "../scripts/score.py"


rule collect_metrics:
    # One row per run: the table every figure reads.
    input:
        metrics=lambda wildcards: runs_of(wildcards.dataset, "metrics.json"),
        records=lambda wildcards: runs_of(wildcards.dataset, "run.json"),
        train_logs=lambda wildcards: runs_of(wildcards.dataset, "train_log.csv"),
    output:
        DATASET_FILES["metrics"],
    log:
        "logs/{dataset}/collect_metrics.log",
    conda:
        ENV
    params:
        library_code=code("collect_metrics.py"),
    script:
        "../scripts/collect_metrics.py"
