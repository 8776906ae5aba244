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
