# Seed 004's experiments on the trained models (Ho et al. 2020, sec. 4.3): progressive coding,
# the rate and distortion of held-out test images at every step of the reverse process, and
# interpolation through x_t in the best cell. Which runs the rate-distortion figure needs (the
# largest T of each schedule) is declared in src/ddpm/workflow/figures.py.


rule coding:
    # One job per cell, like sampling: T model evaluations per seed, on all test images at once.
    input:
        models=cell_runs("model.pt"),
        data=DATASET_FILES["data"],
    output:
        cell_runs("coding.csv"),
    log:
        f"logs/{{dataset}}/coding/{CELL}.log",
    benchmark:
        benchmark_file("coding", CELL)
    conda:
        ENV
    params:
        options=config["coding"],
        device=DEVICE,
        library_code=code("coding.py"),
    script:
        "../scripts/coding.py"


rule interpolate:
    # Ho et al. fig. 9 in the best cell, which only the scored grid can name.
    input:
        metrics=DATASET_FILES["metrics"],
        floor=DATASET_FILES["floor"],
        models=lambda wildcards: runs_of(wildcards.dataset, "model.pt"),
        data=DATASET_FILES["data"],
        precision=DATASET_FILES["precision"],
    output:
        DATASET_FILES["interpolation"],
    log:
        "logs/{dataset}/interpolate.log",
    conda:
        ENV
    params:
        options=config["interpolation"],
        device=DEVICE,
        library_code=code("interpolate.py"),
    script:
        "../scripts/interpolate.py"
