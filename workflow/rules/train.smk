rule train:
    # Rolling checkpoints live in {run}/checkpoints/ and are not outputs: a job killed by a
    # time limit or a preemption resumes from them when Snakemake retries it.
    input:
        data="results/{dataset}/data.npz",
        lib=lib("train.py"),
    output:
        **train_outputs(),
    log:
        "logs/{dataset}/train/{schedule}-T{T}-seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/train/{schedule}-T{T}-seed{seed}.tsv"
    conda:
        ENV_TORCH
    threads: res("train", "threads", 1)
    resources:
        gpu=res("train", "gpu", 0),
        runtime=attempt_runtime("train"),
        mem_mb=res("train", "mem_mb", 4000),
    params:
        run=run_config,
    script:
        "../scripts/train.py"
