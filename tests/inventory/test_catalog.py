from ecohash.inventory.catalog import builtin_catalog
from ecohash.inventory.model import GpuModel, Sku

REQUIRED_MODELS = {"h100-sxm", "h100-pcie", "h200-sxm", "l40s", "a100-sxm", "rtx-4090", "b200"}


def test_catalog_has_the_required_gpu_models_with_sources():
    models = {k: GpuModel.model_validate(v) for k, v in builtin_catalog()["gpu_models"].items()}
    assert set(models) >= REQUIRED_MODELS
    for key, model in models.items():
        assert model.source, key
        assert model.min_cap_w <= model.tdp_w <= (model.max_cap_w or model.tdp_w), key
        assert model.nvidia_smi_name and model.nvidia_smi_name.startswith("NVIDIA"), key


def test_catalog_skus_reference_known_models():
    models = builtin_catalog()["gpu_models"]
    skus = {k: Sku.model_validate(v) for k, v in builtin_catalog()["skus"].items()}
    assert len(skus) >= 4
    for key, sku in skus.items():
        assert sku.source, key
        assert (sku.gpu in models) if sku.gpus else sku.gpu is None, key


def test_published_figures():
    models = builtin_catalog()["gpu_models"]
    assert (models["h100-sxm"]["tdp_w"], models["h100-sxm"]["min_cap_w"]) == (700, 200)
    assert models["l40s"]["tdp_w"] == 350 and models["b200"]["tdp_w"] == 1000
