rule sample:
    input:
        model=f"{RUN}/model.pt",
        lib=lib("sample.py"),
    output:
        samples=f"{RUN}/samples.npz",
        grid=f"{RUN}/samples.png",
    log:
        "logs/{dataset}/sample/{schedule}-T{T}-seed{seed}.log",
    benchmark:
        "results/{dataset}/benchmarks/sample/{schedule}-T{T}-seed{seed}.tsv"
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
        seed=lambda wildcards: int(wildcards.seed),
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
