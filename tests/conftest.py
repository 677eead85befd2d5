import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
from tiny import TINY_EXPORT_MODEL, tiny_rows  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    """The fitted default-variant model that the export and serving tests share.

    Three named features (a, b, c) of unequal scales; read it, never change it.
    """
    import keras

    from mmocgan_tf import MMOCGAN

    keras.utils.set_random_seed(0)
    model = MMOCGAN(num_features=3, feature_names=["a", "b", "c"], **TINY_EXPORT_MODEL)
    model.compile(steps_per_execution=4)
    model.fit(tiny_rows(200), epochs=1, batch_size=50, verbose=0)
    return model


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory):
    """tiny_model's SavedModel, exported once: the path of BASE/tiny/1."""
    from mmocgan_tf.deploy.export import export_saved_model

    return export_saved_model(tiny_model, str(tmp_path_factory.mktemp("export") / "tiny"))
