rule train_classifier:
    # The domain classifier whose features give IS / FID / KID that mean something for digits.
    input:
        data="results/{dataset}/data.npz",
        lib=lib("train_classifier.py"),
    output:
        weights="results/{dataset}/classifier/classifier.pt",
        summary="results/{dataset}/classifier/classifier.json",
    log:
        "logs/{dataset}/train_classifier.log",
    conda:
        ENV_TORCH
    threads: res("score", "threads", 1)
    resources:
        gpu=res("score", "gpu", 0),
        runtime=attempt_runtime("score"),
        mem_mb=res("score", "mem_mb", 4000),
    params:
        epochs=config.get("scoring", {}).get("classifier", {}).get("epochs", 100),
        seed=0,
        image_size=config.get("scoring", {}).get("image_size"),
    script:
        "../scripts/train_classifier.py"


rule inception_weights:
    # A local rule: fetches torch-fidelity's Inception-v3 weights once, where there is internet.
    # Offline with `mode: auto` it records why the Inception metrics are not computed.
    # `provided` names the weights files the user has put in place (with size and mtime): a file
    # added after an offline run changes it, so Snakemake's params trigger reruns this rule and
    # the scoring after it. The rule's own downloads do not change it (they go to downloaded/).
    input:
        lib("inception_weights.py"),
    output:
        f"{INCEPTION_RESOURCES}/status.json",
    log:
        "logs/inception_weights.log",
    localrule: True
    conda:
        ENV_TORCH
    params:
        inception=config.get("scoring", {}).get("inception", {}),
        resources_dir=lambda wildcards, output: os.path.dirname(output[0]),
        provided=inception_weights_provided,
    script:
        "../scripts/inception_weights.py"


rule real_floor:
    # Metrics between two disjoint real sets of the generated set's size, and the reference
    # statistics of the test set, cached once for every run of the dataset.
    input:
        data="results/{dataset}/data.npz",
        classifier="results/{dataset}/classifier/classifier.pt",
        inception="resources/inception/status.json",
        lib=lib("real_floor.py"),
    output:
        floor="results/{dataset}/floor.json",
        cache=directory("results/{dataset}/reference_cache"),
    log:
        "logs/{dataset}/real_floor.log",
    conda:
        ENV_TORCH
    threads: res("score", "threads", 1)
    resources:
        gpu=res("score", "gpu", 0),
        runtime=attempt_runtime("score"),
        mem_mb=res("score", "mem_mb", 4000),
    params:
        scoring=config.get("scoring", {}),
        num_samples=config["sampling"]["num_samples"],
    script:
        "../scripts/real_floor.py"


rule score:
    # One job per cell, like sampling: the seeds share the scorer's start-up.
    input:
        samples=cell_runs("samples.npz"),
        data="results/{dataset}/data.npz",
        classifier="results/{dataset}/classifier/classifier.pt",
        inception="resources/inception/status.json",
        floor="results/{dataset}/floor.json",
        cache="results/{dataset}/reference_cache",
        lib=lib("score.py"),
    output:
        metrics=cell_runs("metrics.json"),
    log:
        f"logs/{{dataset}}/score/{CELL}.log",
    benchmark:
        f"results/{{dataset}}/benchmarks/score/{CELL}.tsv"
    conda:
        ENV_TORCH
    threads: res("score", "threads", 1)
    resources:
        gpu=res("score", "gpu", 0),
        runtime=attempt_runtime("score"),
        mem_mb=res("score", "mem_mb", 4000),
    params:
        scoring=config.get("scoring", {}),
    script:
        "../scripts/score.py"


rule collect_metrics:
    # One row per run: the table every figure reads.
    input:
        metrics=lambda wildcards: runs_of(wildcards.dataset, "metrics.json"),
        records=lambda wildcards: runs_of(wildcards.dataset, "run.json"),
        train_logs=lambda wildcards: runs_of(wildcards.dataset, "train_log.csv"),
        lib=lib("collect_metrics.py"),
    output:
        "results/{dataset}/metrics.csv",
    log:
        "logs/{dataset}/collect_metrics.log",
    conda:
        ENV_ANALYSIS
    script:
        "../scripts/collect_metrics.py"
