"""The deployment files under deploy/ (Dockerfile, Compose, Kubernetes): their config is valid,
takes every secret from the environment, serves real clients against PostgreSQL, and the
container, Compose and Kubernetes files agree with it (ports, config path, probes, secrets,
drain time, writable spool). No container engine or cluster runs here, so the files are checked
against each other and the config is run by the real binary.
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile
import time
import tomllib
import urllib.request

import pytest
import yaml

from conftest import ROOT, ROUTER_BIN, _spawn

DEPLOY = ROOT / "deploy"
CONFIG_TEXT = (DEPLOY / "config.toml").read_text()
CONFIG = tomllib.loads(CONFIG_TEXT)
SECRET_VARS = sorted(set(re.findall(r'"env:([A-Za-z0-9_]+)"', CONFIG_TEXT)) | {"PGPASSWORD"})
LISTEN_PORT = int(CONFIG["server"]["listen"].rsplit(":", 1)[1])
DRAIN_S = CONFIG["server"]["drain_timeout_ms"] / 1000
APP_TOKEN = "sr-deploy-app-token"
OPS_TOKEN = "sr-deploy-ops-token"
SECRETS = {
    "PGPASSWORD": "pg-deploy-password",
    "OPENAI_API_KEY": "sk-deploy-openai",
    "ANTHROPIC_API_KEY": "sk-ant-deploy",
    "ROUTER_APP_TOKEN": APP_TOKEN,
    "ROUTER_OPS_TOKEN": OPS_TOKEN,
    "ROUTER_METRICS_TOKEN": "sr-deploy-metrics-token",
}


LICENSE_PATH = CONFIG["license"]["path"]
DEV_KEY = ROOT / "crates/router/tests/fixtures/license/dev-2026.key"


def signed_license(directory):
    """A development-signed license for the deploy's replicas (+1 for a rolling update),
    written by the real `license sign`; private_upstreams because the test points the
    providers at the fake upstream on loopback."""
    now = time.time()
    stamp = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    payload = pathlib.Path(directory) / "payload.json"
    payload.write_text(json.dumps({
        "license_id": "LIC-DEPLOY", "customer": "deploy test", "issued_at": stamp(now - 60),
        "not_before": stamp(now - 60), "expires_at": stamp(now + 86400), "grace_days": 0,
        "features": ["routing", "usage_reporting", "admin_reports", "exports", "private_upstreams"],
        "max_instances": 3,
    }))
    out = subprocess.run(
        [ROUTER_BIN, "license", "sign", "--key", str(DEV_KEY), "--payload", str(payload), "--key-id", "dev-2026"],
        capture_output=True, text=True, check=True,
    ).stdout
    path = pathlib.Path(directory) / "license.json"
    path.write_text(out)
    return path


def dockerfile_cmd():
    """The image's ENTRYPOINT + CMD, as exec-form JSON lists."""
    text = (DEPLOY / "Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", text, re.M).group(1))
    return entry, cmd


def config_path(args):
    return args[args.index("--config") + 1]


def test_every_secret_is_an_env_reference_and_all_of_them_are_known():
    assert set(SECRET_VARS) == set(SECRETS), "update SECRETS (and compose/k8s) with the config"
    for p in CONFIG["providers"].values():
        assert p["api_key"].startswith("env:")
    for c in CONFIG["callers"]:
        assert c["token"].startswith("env:")
    assert "@postgres:" in CONFIG["store"]["url"] and ":" not in CONFIG["store"]["url"].split("//")[1].split("@")[0], (
        "no password in the store URL: it comes from PGPASSWORD"
    )


def test_check_config_accepts_it_with_the_secrets_and_names_each_missing_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG_TEXT.replace(LICENSE_PATH, str(signed_license(tmp_path))))
    ok = subprocess.run(
        [ROUTER_BIN, "check-config", str(cfg)],
        env=env | SECRETS, capture_output=True, text=True,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "license LIC-DEPLOY for deploy test: licensed" in ok.stdout, ok.stdout
    missing = subprocess.run(
        [ROUTER_BIN, "check-config", str(cfg)], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 1
    for var in SECRET_VARS:
        if var != "PGPASSWORD":
            assert f"environment variable {var} is not set" in missing.stdout + missing.stderr, var
    for value in SECRETS.values():
        assert value not in ok.stdout + ok.stderr + missing.stdout + missing.stderr


def _get(url, token=None):
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _psql(sql):
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc", sql],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


@pytest.fixture(scope="module")
def deployed(stack):
    """The router running deploy/config.toml, with only what a test box must change: listen on
    a loopback port, PostgreSQL on 127.0.0.1 (own schema), providers at the fake upstream."""
    fake = stack["fake"].url
    schema = f"sr_test_deploy_{os.getpid()}"
    text = (
        CONFIG_TEXT.replace('listen = "0.0.0.0:8080"', 'listen = "127.0.0.1:0"')
        .replace(
            "postgres://smart_router@postgres:5432/smart_router?",
            f"postgres://postgres@127.0.0.1:5432/test?schema={schema}&application_name={schema}&",
        )
        .replace("https://api.openai.com/v1", f"{fake}/v1")
        .replace("https://api.anthropic.com", fake)
    )
    state = tempfile.mkdtemp()
    text = text.replace('spool_path = "/var/lib/smart-router/usage.spool"', f'spool_path = "{state}/usage.spool"')
    text = text.replace(LICENSE_PATH, str(signed_license(state)))
    assert text.count(fake) == 2 and schema in text and "127.0.0.1:0" in text
    cfg = pathlib.Path(state) / "config.toml"
    cfg.write_text(text)
    proc = subprocess.Popen(
        [ROUTER_BIN, "serve", "--config", str(cfg)],
        env=os.environ | SECRETS, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("smart-router listening on "), line
    url = line.strip()[len("smart-router listening on "):]
    yield {"url": url, "schema": schema, "proc": proc}
    proc.terminate()
    proc.wait(timeout=10)
    logs = proc.stderr.read()
    for value in SECRETS.values():
        assert value not in logs
    _psql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    shutil.rmtree(state)


def test_the_deploy_config_serves_sdk_traffic_and_keeps_usage_in_postgres(deployed, stack):
    from anthropic import Anthropic
    from openai import OpenAI

    fake = stack["fake"]
    fake.clear()
    fake.script(text="deployed hello", usage={"input": 7, "output": 3})
    r = OpenAI(base_url=deployed["url"] + "/v1", api_key=APP_TOKEN, max_retries=0).chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hi"}]
    )
    assert r.choices[0].message.content == "deployed hello"
    fake.script(text="deployed claude", usage={"input": 5, "output": 2})
    m = Anthropic(base_url=deployed["url"], api_key=APP_TOKEN, max_retries=0).messages.create(
        model="coder", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert m.content[0].text == "deployed claude"
    # Whichever provider served, it got its key from the environment, and never a router token.
    for req in fake.requests():
        h = dict(req["headers"])
        assert h.get("authorization") == "Bearer sk-deploy-openai" or h.get("x-api-key") == "sk-ant-deploy", h
        assert APP_TOKEN not in str(h)
    # The app token may not read reports; the ops token may, and sees both requests in PostgreSQL
    # (the writer flushes every 200 ms).
    assert _get(deployed["url"] + "/admin/reports/usage", APP_TOKEN)[0] == 403
    deadline = time.time() + 10
    while True:
        status, body = _get(deployed["url"] + "/admin/reports/usage?format=json", OPS_TOKEN)
        assert status == 200, body
        n = _psql(f'SELECT count(*) FROM "{deployed["schema"]}".usage_records')
        if n == "2" or time.time() > deadline:
            break
        time.sleep(0.2)
    assert n == "2"
    assert _psql(f'SELECT string_agg(DISTINCT caller, \',\') FROM "{deployed["schema"]}".usage_records') == "apps"


def test_the_store_connection_is_encrypted_with_sslmode_prefer(deployed):
    assert _psql("SHOW ssl") == "on", "the test PostgreSQL serves TLS (Debian's default)"
    rows = _psql(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
        f"WHERE a.application_name = '{deployed['schema']}'"
    ).split()
    assert rows and set(rows) == {"t"}, rows


def _compose():
    return yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())


def test_compose_agrees_with_the_config_and_the_image():
    router = _compose()["services"]["router"]
    entry, cmd = dockerfile_cmd()
    assert entry[0].endswith("smart-router") and cmd[0] == "serve"
    mounts = {m.split(":")[1]: m.split(":")[0] for m in router["volumes"]}
    assert (DEPLOY / "compose" / mounts[config_path(cmd)]).resolve() == DEPLOY / "config.toml"
    assert mounts[LICENSE_PATH] == "./license.json", "the license is mounted where the config reads it"
    assert router["deploy"]["replicas"] < 3, "the license in the README covers replicas + 1"
    assert all(p.endswith(f":{LISTEN_PORT}") for p in router["ports"])
    assert set(router["environment"]) == set(SECRET_VARS)
    grace = router["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > DRAIN_S
    pg = _compose()["services"]["postgres"]
    assert pg["environment"]["POSTGRES_USER"] in CONFIG["store"]["url"]
    assert "postgres:5432/" + pg["environment"]["POSTGRES_DB"] in CONFIG["store"]["url"]
    example = (DEPLOY / "compose" / "env.example").read_text()
    for var in set(SECRET_VARS) - {"PGPASSWORD"} | {"POSTGRES_PASSWORD"}:
        assert re.search(rf"^{var}=", example, re.M), var


@pytest.fixture(scope="module")
def kube():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the Kubernetes manifests were not rendered")
    out = subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True).stdout
    return {d["kind"]: d for d in yaml.safe_load_all(out)}


def test_kubernetes_manifests_agree_with_the_config(kube, deployed):
    cm, dep = kube["ConfigMap"], kube["Deployment"]
    assert cm["data"]["config.toml"] == CONFIG_TEXT
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["args"] == dockerfile_cmd()[1], "same command as the image"
    assert c["ports"][0]["containerPort"] == LISTEN_PORT
    assert {e["name"] for e in c["env"]} == set(SECRET_VARS)
    assert all(e["valueFrom"]["secretKeyRef"]["name"] == "smart-router-secrets" for e in c["env"])
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    cfg_mount = next(m for m in mounts.values() if config_path(c["args"]).startswith(m["mountPath"] + "/"))
    assert vols[cfg_mount["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    lic_mount = next(m for m in mounts.values() if LICENSE_PATH.startswith(m["mountPath"] + "/"))
    assert vols[lic_mount["name"]]["secret"]["secretName"] == "smart-router-license"
    surge = dep["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert dep["spec"]["replicas"] + surge <= 3, "max_instances in the README's license covers a rolling update"
    # The root filesystem is read-only: the spool must sit on a writable volume.
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    spool = CONFIG["store"]["spool_path"]
    assert any(spool.startswith(m["mountPath"] + "/") and not m.get("readOnly") for m in mounts.values())
    assert pod["terminationGracePeriodSeconds"] > DRAIN_S + c["lifecycle"]["preStop"]["sleep"]["seconds"]
    # The probes' paths answer 200 on the running router.
    for probe in ("readinessProbe", "livenessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert _get(deployed["url"] + path)[0] == 200, path
    labels = pod.get("labels") or dep["spec"]["template"]["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        sel = kube[kind]["spec"]["selector"]
        sel = sel.get("matchLabels", sel)
        assert sel and all(labels.get(k) == v for k, v in sel.items()), kind
    assert kube["Service"]["spec"]["ports"][0]["targetPort"] == c["ports"][0]["name"]
