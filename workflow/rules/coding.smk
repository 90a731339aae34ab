# Seed 004's experiments on the trained models (Ho et al. 2020, sec. 4.3): progressive coding,
# the rate and distortion of held-out test images at every step of the reverse process, and
# interpolation through x_t in the best cell. Which runs the rate-distortion figure needs (the
# largest T of each schedule) is declared in src/ddpm/figures.py.


rule coding:
    # One job per cell, like sampling: T model evaluations per test image and seed.
    input:
        models=cell_runs("model.pt"),
        data="results/{dataset}/data.npz",
        lib=lib("coding.py"),
    output:
        cell_runs("coding.csv"),
    log:
        f"logs/{{dataset}}/coding/{CELL}.log",
    benchmark:
        f"results/{{dataset}}/benchmarks/coding/{CELL}.tsv"
    conda:
        ENV_TORCH
    threads: res("sample", "threads", 1)
    resources:
        gpu=res("sample", "gpu", 0),
        runtime=attempt_runtime("sample"),
        mem_mb=res("sample", "mem_mb", 4000),
    params:
        options=config.get("coding", {}),
    script:
        "../scripts/coding.py"


rule interpolate:
    # Ho et al. fig. 9 in the best cell, which only the scored grid can name.
    input:
        metrics="results/{dataset}/metrics.csv",
        floor="results/{dataset}/floor.json",
        models=lambda wildcards: runs_of(wildcards.dataset, "model.pt"),
        data="results/{dataset}/data.npz",
        lib=lib("interpolate.py"),
    output:
        "results/{dataset}/interpolation.npz",
    log:
        "logs/{dataset}/interpolate.log",
    conda:
        ENV_TORCH
    threads: res("sample", "threads", 1)
    resources:
        gpu=res("sample", "gpu", 0),
        runtime=attempt_runtime("sample"),
        mem_mb=res("sample", "mem_mb", 4000),
    params:
        options=config.get("interpolation", {}),
    script:
        "../scripts/interpolate.py"
