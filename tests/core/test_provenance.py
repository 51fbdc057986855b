"""Which package code a script runs (nnprobe.core.provenance): the code inputs of every rule.

A job reruns when the code it runs changes, and only then: the import graph is followed down to
the functions a script imports, so a job module's other jobs, and the architectures it does
not build, are not its code.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from nnprobe.core.provenance import code_version, imported_package_files

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def package(tmp_path) -> Path:
    """A small nnprobe package: a jobs module whose two jobs import different modules inside them."""
    root = tmp_path / "src" / "nnprobe"
    files = {
        "__init__.py": "",
        "core/__init__.py": "",
        "core/io.py": "def write(x): return x\n",
        "models/__init__.py": "",
        "models/small.py": "class Small: pass\n",
        "models/large.py": "class Large: pass\n",
        "studies/__init__.py": "",
        "studies/toy/__init__.py": "",
        "studies/toy/science.py": "from ..toy import figures\n\ndef fit(): return 1\n",
        "studies/toy/figures.py": "import nnprobe.core.io\n",
        "studies/toy/jobs.py": """
            from ...core.io import write

            def _helper():
                from ...models.small import Small
                return Small

            def train():
                from .science import fit
                return write(fit() + bool(_helper()))

            def draw():
                from ...models import large
                return large
            """,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def names(files, root: Path) -> set[str]:
    return {str(Path(f).relative_to(root)) for f in files}


def script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scripts" / "job.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_script_depends_on_the_functions_it_imports_not_on_their_neighbours(package, tmp_path):
    train = imported_package_files(script(tmp_path, "from nnprobe.studies.toy.jobs import train\n"), package)
    assert names(train, package) == {
        "__init__.py", "studies/__init__.py", "studies/toy/__init__.py", "studies/toy/jobs.py", "core/__init__.py",
        "core/io.py", "studies/toy/science.py", "studies/toy/figures.py", "models/__init__.py", "models/small.py"}
    draw = imported_package_files(script(tmp_path, "from nnprobe.studies.toy.jobs import draw\n"), package)
    assert "models/large.py" in names(draw, package) and "models/small.py" not in names(draw, package)
    assert "studies/toy/science.py" not in names(draw, package)


def test_a_whole_module_import_follows_everything_in_it(package, tmp_path):
    whole = imported_package_files(script(tmp_path, "import nnprobe.studies.toy.jobs\n"), package)
    assert {"models/small.py", "models/large.py", "studies/toy/science.py"} <= names(whole, package)


def test_the_workflow_s_training_jobs_run_only_their_own_architectures():
    """The registry imports no architecture: the noise study's ResNet training does not depend on
    the Keras CNN, and no adversarial job on the mislabel or noise networks."""
    src = REPO / "src" / "nnprobe"

    def code(path: str) -> set[str]:
        return names(imported_package_files(REPO / "scripts" / path, src), src)

    assert "models/resnet.py" in code("noise/noise_train.py") and "models/keras_cnn.py" not in code("noise/noise_train.py")
    assert "models/keras_cnn.py" in code("noise/noise_probe_population.py")
    assert "studies/noise/probes.py" not in code("noise/noise_train.py")
    assert "models/szegedy.py" in code("adversarial/train_zoo_model.py")
    assert not {"models/keras_cnn.py", "models/resnet.py", "models/topdown.py"} & code("adversarial/train_zoo_model.py")
    assert "models/szegedy.py" not in code("mislabel/train_population.py")
    assert "studies/visualize/features.py" not in code("visualize/visualize_train.py")


def test_the_code_version_is_the_code_not_where_it_lies(package, tmp_path):
    files = [package / "core" / "io.py", package / "models" / "small.py"]
    version = code_version(files)
    assert version == code_version(list(reversed(files)))
    (package / "models" / "small.py").write_text("class Small: size = 2\n")
    assert code_version(files) != version
