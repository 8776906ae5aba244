"""No Docker engine runs on our machines: check that the image and compose file run what the worker
tests exercise (``nntransfer worker RECIPE --schema SCHEMA``) with credentials from an env file."""

from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_dockerfile_starts_a_worker():
    text = (ROOT / "Dockerfile").read_text()
    cmd = [line for line in text.splitlines() if line.startswith("CMD")]
    assert len(cmd) == 1 and "nntransfer worker" in cmd[0] and "--schema" in cmd[0]
    assert 'pip install --no-cache-dir ".[demo]"' in text


def test_compose_scales_workers_against_one_database():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "image: mariadb" in text and "character-set-server=latin1" in text
    worker = text.split("worker:")[1]
    assert "env_file: .env" in worker and "DJ_HOST: db" in worker
    assert "container_name" not in worker  # a fixed name would prevent --scale worker=N
    env_keys = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert {"DJ_USER", "DJ_PASS", "RECIPE", "SCHEMA"} <= env_keys


def _service(text, name):
    """The lines of one service of the compose file (indented under ``services:``)."""
    lines = text.split("services:", 1)[1].splitlines()
    start = lines.index(f"  {name}:")
    block = []
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith("    ") and not line.lstrip().startswith("#"):
            break
        block.append(line)
    return block


def _list_under(block, key):
    """The ``- item`` values under ``key:`` in a service block, comments and quotes removed."""
    items, inside = [], False
    for line in block:
        stripped = line.strip()
        if stripped.startswith(f"{key}:"):
            inside = True
            continue
        if inside and stripped.startswith("- "):
            items.append(stripped[2:].split("#")[0].strip().strip('"').strip("'"))
        elif inside and stripped and not stripped.startswith("#"):
            break
    return items


def test_compose_publishes_the_database_on_this_machine_only():
    text = (ROOT / "docker-compose.yml").read_text()
    ports = _list_under(_service(text, "db"), "ports")
    assert ports and all(p.startswith("127.0.0.1:") for p in ports), ports  # never 0.0.0.0 (all interfaces)
    assert "ports" not in " ".join(_service(text, "worker"))  # workers publish nothing


def test_the_recipes_folder_compose_mounts_exists_and_says_how_to_use_it():
    text = (ROOT / "docker-compose.yml").read_text()
    mounts = _list_under(_service(text, "worker"), "volumes")
    host = [m.split(":")[0] for m in mounts if m.split(":")[1] == "/recipes"]
    assert host == ["./recipes"]
    folder = ROOT / host[0]
    assert folder.is_dir() and "RECIPE=/recipes/" in (folder / "README.md").read_text()


def test_dockerignore_keeps_work_folders_and_secrets_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert {".git", ".env", "nntransfer_work", "nntransfer_report", "data"} <= ignored
    copied = [path for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY") for path in line.split()[1:-1]]
    assert {"setup.py", "README.md", "nntransfer"} <= set(copied) and not ignored & set(copied)  # what the image needs is not ignored
