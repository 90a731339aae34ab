rule sample:
    # One job per cell: every seed's model, each sampled with its own seed into its own file.
    # Finished batches are kept in {run}/sampling/ (not an output) until the job ends, so a
    # job killed by a time limit resumes where it stopped when Snakemake retries it.
    input:
        models=cell_runs("model.pt"),
        precision=DATASET_FILES["precision"],
    output:
        samples=cell_runs("samples.npz"),
        grids=cell_runs("samples.png"),
    log:
        f"logs/{{dataset}}/sample/{CELL}.log",
    benchmark:
        benchmark_file("sample", CELL)
    conda:
        ENV
    params:
        sampling=config["sampling"],
        seeds=SEEDS,
        grid_samples=config["figures"]["grid_samples"],
        device=DEVICE,
        library_code=code("sample.py"),
    script:
        "../scripts/sample.py"


rule reconstruct:
    # Report 002, figure 4: real test images noised to x_t and denoised back.
    input:
        model=f"{RUN}/model.pt",
        data=DATASET_FILES["data"],
        precision=DATASET_FILES["precision"],
    output:
        f"{RUN}/reconstruction.npz",
    log:
        "logs/{dataset}/reconstruct/{schedule}-T{T}-seed{seed}.log",
    conda:
        ENV
    params:
        fractions=config["figures"]["reconstruction_fractions"],
        num_images=config["figures"]["reconstruction_images"],
        seed=lambda wildcards: int(wildcards.seed),
        device=DEVICE,
        library_code=code("reconstruct.py"),
    script:
        "../scripts/reconstruct.py"
