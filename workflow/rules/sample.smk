rule sample:
    # One job per cell: every seed's model, each sampled with its own seed into its own file.
    input:
        models=cell_runs("model.pt"),
        lib=lib("sample.py"),
    output:
        samples=cell_runs("samples.npz"),
        grids=cell_runs("samples.png"),
    log:
        f"logs/{{dataset}}/sample/{CELL}.log",
    benchmark:
        f"results/{{dataset}}/benchmarks/sample/{CELL}.tsv"
    conda:
        ENV_TORCH
    threads: res("sample", "threads", 1)
    resources:
        gpu=res("sample", "gpu", 0),
        runtime=attempt_runtime("sample"),
        mem_mb=res("sample", "mem_mb", 4000),
    params:
        sampling={
            **config["sampling"],
            "device": device_for("sample", config["training"].get("device", "auto")),
        },
        seeds=SEEDS,
        grid_samples=config.get("figures", {}).get("grid_samples", 16),
    script:
        "../scripts/sample.py"


rule reconstruct:
    # Report 002, figure 4: real test images noised to x_t and denoised back.
    input:
        model=f"{RUN}/model.pt",
        data="results/{dataset}/data.npz",
        lib=lib("reconstruct.py"),
    output:
        f"{RUN}/reconstruction.npz",
    log:
        "logs/{dataset}/reconstruct/{schedule}-T{T}-seed{seed}.log",
    conda:
        ENV_TORCH
    threads: res("sample", "threads", 1)
    resources:
        gpu=res("sample", "gpu", 0),
        runtime=attempt_runtime("sample"),
        mem_mb=res("sample", "mem_mb", 4000),
    params:
        fractions=config.get("figures", {}).get(
            "reconstruction_fractions", [0.1, 0.25, 0.5, 0.75]
        ),
        num_images=config.get("figures", {}).get("reconstruction_images", 8),
        seed=lambda wildcards: int(wildcards.seed),
    script:
        "../scripts/reconstruct.py"
