rule sample:
    # One job per cell: every seed's model, each sampled with its own seed into its own file.
    # Finished batches are kept in {run}/sampling/ (not an output) until the job ends, so a
    # job killed by a time limit resumes where it stopped when Snakemake retries it.
    input:
        models=cell_runs("model.pt"),
        precision="results/{dataset}/precision.json",
    output:
        samples=cell_runs("samples.npz"),
        grids=cell_runs("samples.png"),
    log:
        f"logs/{{dataset}}/sample/{CELL}.log",
    benchmark:
        f"results/{{dataset}}/benchmarks/sample/{CELL}.tsv"
    conda:
        ENV
    params:
        sampling=config["sampling"],
        seeds=SEEDS,
        grid_samples=config.get("figures", {}).get("grid_samples", 16),
        device=DEVICE,
        library_code=code("sample.py"),
    script:
        "../scripts/sample.py"


rule reconstruct:
    # Report 002, figure 4: real test images noised to x_t and denoised back.
    input:
        model=f"{RUN}/model.pt",
        data="results/{dataset}/data.npz",
        precision="results/{dataset}/precision.json",
    output:
        f"{RUN}/reconstruction.npz",
    log:
        "logs/{dataset}/reconstruct/{schedule}-T{T}-seed{seed}.log",
    conda:
        ENV
    params:
        fractions=config.get("figures", {}).get(
            "reconstruction_fractions", [0.1, 0.25, 0.5, 0.75]
        ),
        num_images=config.get("figures", {}).get("reconstruction_images", 8),
        seed=lambda wildcards: int(wildcards.seed),
        device=DEVICE,
        library_code=code("reconstruct.py"),
    script:
        "../scripts/reconstruct.py"
