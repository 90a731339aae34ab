rule prepare_dataset:
    # A local rule: on a cluster it runs where the internet is (the login node).
    output:
        DATASET_FILES["data"],
    log:
        "logs/{dataset}/prepare_dataset.log",
    localrule: True
    conda:
        ENV
    params:
        # A variant (dataset_options.<name>.variant_of) is made from the dataset it names.
        source=lambda wildcards: registry_name(
            wildcards.dataset, config.get("dataset_options")
        ),
        # A dataset's options (image_size, resize_mode, base_url, checksums); what they leave
        # out takes ddpm.data.prepare.prepare_dataset's defaults (image_size: the native one;
        # downloads go to resources/datasets).
        options=lambda wildcards: {
            key: value
            for key, value in (
                (config.get("dataset_options") or {}).get(wildcards.dataset) or {}
            ).items()
            if key != "variant_of"
        },
        library_code=code("prepare_dataset.py"),
    script:
        "../scripts/prepare_dataset.py"
