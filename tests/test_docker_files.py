"""No Docker engine runs on our machines: check that the image and compose file run what the worker
tests exercise (``nntransfer worker RECIPE --schema SCHEMA``) with credentials from an env file, as a user
without root rights, connecting as a database user with only the privileges a worker needs (the grants
of the compose file's init script are tried on the real server)."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
INIT_SCRIPT = ROOT / "docker" / "db-init" / "10-worker-user.sh"


def test_dockerfile_starts_a_worker():
    text = (ROOT / "Dockerfile").read_text()
    cmd = [line for line in text.splitlines() if line.startswith("CMD")]
    assert len(cmd) == 1 and "nntransfer worker" in cmd[0] and "--schema" in cmd[0]
    assert 'pip install --no-cache-dir ".[demo,datajoint]"' in text  # a worker's store is the DataJoint one


def env_example():
    lines = (ROOT / ".env.example").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def test_compose_scales_workers_against_one_database():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "image: mariadb" in text and "character-set-server=latin1" in text
    worker = "\n".join(_service(text, "worker"))
    assert "DJ_HOST: db" in worker and "DJ_USER: ${DJ_USER" in worker and "DJ_PASS: ${DJ_PASS" in worker
    assert "container_name" not in worker  # a fixed name would prevent --scale worker=N
    assert {"DJ_USER", "DJ_PASS", "RECIPE", "SCHEMA"} <= set(env_example())


def test_env_file_with_the_passwords_is_ignored_by_git_and_the_image():
    """``cp .env.example .env`` put DJ_PASS in a file git offered to commit."""
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    assert ".env" in ignored and ".env.example" not in ignored
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


def test_the_worker_image_runs_as_a_user_without_root_rights():
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")  # the last USER is who runs the CMD
    assert lines.index(f"USER {users[-1]}") < next(i for i, line in enumerate(lines) if line.startswith("CMD"))
    assert any("useradd" in line and users[-1] in line for line in lines)
    assert any("chown" in line and "/store" in line for line in lines)  # the shared store is writable by it


def test_workers_connect_as_their_own_database_user_and_never_see_the_root_password():
    """``.env.example`` connected workers as the database's root user, and ``env_file`` gave every worker
    the root password."""
    example = env_example()
    assert example["DJ_USER"] != "root" and example.get("DB_ROOT_PASS") and example["DB_ROOT_PASS"] != example["DJ_PASS"]
    text = (ROOT / "docker-compose.yml").read_text()
    db, worker = "\n".join(_service(text, "db")), "\n".join(_service(text, "worker"))
    assert "MARIADB_ROOT_PASSWORD: ${DB_ROOT_PASS" in db and "DB_ROOT_PASS" not in worker and "env_file" not in worker
    mounts = _list_under(_service(text, "db"), "volumes")
    assert "./docker/db-init:/docker-entrypoint-initdb.d:ro" in mounts  # the script that creates the user
    script = INIT_SCRIPT.read_text()
    for variable in ("WORKER_USER", "WORKER_PASS", "WORKER_SCHEMA", "WORKER_CORE_SCHEMA"):
        assert f"{variable}: ${{" in db and f"${{{variable}" in script
    assert os.access(INIT_SCRIPT, os.X_OK)


def grants(user, password, schema, core):
    """The SQL statements of the init script, with its variables filled in."""
    script = INIT_SCRIPT.read_text()
    sql = script.split("<<SQL\n", 1)[1].split("\nSQL", 1)[0].replace("\\`", "`")
    values = {"WORKER_USER": user, "WORKER_PASS": password, "WORKER_SCHEMA": schema, "WORKER_CORE_SCHEMA": core}
    sql = re.sub(r"\$\{(\w+)\}", lambda match: values[match.group(1)], sql)
    return [statement.strip() for statement in sql.split(";") if statement.strip()]


def test_the_init_script_grants_nothing_beyond_the_two_schemas():
    statements = grants("w", "p", "lab", "core")
    assert statements[0].startswith("CREATE USER IF NOT EXISTS 'w'@'%'")
    on = [re.search(r" ON (\S+) TO ", s).group(1) for s in statements[1:]]
    assert on == ["`lab`.*", "`core`.*"]
    for statement in statements[1:]:
        granted = statement.split("GRANT ", 1)[1].split(" ON ", 1)[0]
        assert not {"ALL", "DROP", "GRANT OPTION", "SUPER", "PROCESS", "FILE"} & {p.strip() for p in granted.split(",")}


@pytest.mark.database
@pytest.mark.slow
def test_a_worker_connected_as_the_init_scripts_user_trains_a_recipe(db_prefix, tmp_path):
    """The privileges the script grants are enough for a worker: it creates the schema and its tables,
    trains, checkpoints and stores a two-step chain."""
    from recipe_factory import write_toy_recipe

    from nntransfer.tables import database

    user, password = f"nnt_w{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    schema, core = f"{db_prefix}_granted", os.environ["NNFABRIK_SCHEMA_NAME"]
    conn = database.connect()
    try:
        for statement in grants(user, password, schema, core):
            conn.query(statement.replace("%", "%%"))  # the query is %-formatted
        recipe = write_toy_recipe(tmp_path, "granted", chains=1)
        env = dict(os.environ, DJ_USER=user, DJ_PASS=password,
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))  # fmt: skip
        result = subprocess.run([sys.executable, "-m", "nntransfer", "worker", str(recipe), "--schema", schema, "--quiet"],
                                capture_output=True, text=True, timeout=180, env=env)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.count(" done ") == 2, result.stdout
        trained_by = conn.query(f"SELECT DISTINCT fabrikant_name FROM `{schema}`.`__transferred_trained_model`").fetchall()
        assert trained_by == ((user,),)  # stored by the worker's own user, not root
    finally:
        conn.query(f"DROP USER IF EXISTS '{user}'@'%%'")


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
