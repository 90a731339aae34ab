rule decide_precision:
    # Precision `auto`, decided once per dataset on the kind of machine its jobs run on, and
    # read by every training and sampling job (ddpm.study_precision): the cells of a study
    # never differ in precision. It asks for what training asks for (profiles/).
    input:
        data=DATASET_FILES["data"],
    output:
        DATASET_FILES["precision"],
    log:
        "logs/{dataset}/decide_precision.log",
    conda:
        ENV
    params:
        model=config["model"],
        training=config["training"],
        sampling=config["sampling"],
        T=max(STEPS),
        device=DEVICE,
        library_code=code("decide_precision.py"),
    script:
        "../scripts/decide_precision.py"


rule train:
    # Rolling checkpoints live in {run}/checkpoints/ and are not outputs: a job killed by a
    # time limit or a preemption resumes from them when Snakemake retries it.
    input:
        data=DATASET_FILES["data"],
        precision=DATASET_FILES["precision"],
    output:
        **train_outputs(),
    log:
        "logs/{dataset}/train/{schedule}-T{T}-seed{seed}.log",
    benchmark:
        benchmark_file("train", RUN.rpartition("/")[2])
    conda:
        ENV
    params:
        run=run_config,
        device=DEVICE,
        library_code=code("train.py"),
    script:
        "../scripts/train.py"
