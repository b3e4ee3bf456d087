"""``wattlm serve --ray``: option checks, the thread split, and two replicas on a local Ray."""

from __future__ import annotations

import builtins
import importlib.util

import pytest

from wattlm.cli.main import main
from wattlm.errors import WattlmError
from wattlm.serve import ray_serve
from wattlm.serve.ray_serve import RayOptions, plan_threads, replica_threads


def _need_ray_serve() -> None:
    # ray.serve is in every ray wheel; importing it fails without the ray[serve] extra
    if importlib.util.find_spec("ray") is None:
        pytest.skip('needs Ray Serve: pip install "ray[serve]"')
    pytest.importorskip("ray.serve", reason='needs Ray Serve: pip install "ray[serve]"')


def test_bad_ray_options_are_one_line_errors(capsys):
    assert main(["serve", "m.gguf", "--ray", "--replicas", "0"]) == 2
    err = capsys.readouterr().err
    assert "--replicas must be an integer >= 1, got 0" in err and "Traceback" not in err
    assert main(["serve", "m.gguf", "--ray", "--ray-address", " "]) == 2
    assert "--ray-address is empty" in capsys.readouterr().err
    assert main(["serve", "m.gguf", "--replicas", "3"]) == 2
    assert "only apply with --ray" in capsys.readouterr().err


def test_missing_ray_serve_names_the_extra(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    assert main(["serve", "m.gguf", "--ray"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert "needs Ray Serve (ray[serve])" in lines[0]
    assert any('pip install "ray[serve]"' in line for line in lines)


def test_threads_split_the_cpus_among_replicas():
    assert (
        replica_threads(16, 2) == 8 and replica_threads(16, 3) == 5 and replica_threads(2, 2) == 1
    )
    assert plan_threads(16, 2, None) == 8
    assert plan_threads(16, 2, None, cap=4) == 4  # a run's measured threads, when fewer
    assert plan_threads(16, 2, 12) == 12  # --threads is the user's call
    with pytest.raises(WattlmError, match="more than the 2 CPUs"):
        plan_threads(2, 3, None)


def test_options_round_trip_and_reject_non_integers():
    assert RayOptions.from_dict(RayOptions(replicas=3, address="h:6379").to_dict()) == RayOptions(
        replicas=3, address="h:6379"
    )
    with pytest.raises(WattlmError):
        RayOptions(replicas=True)


def test_a_named_replica_is_in_usage_and_health():
    """The one app every replica runs: ``replica`` is added to usage and /health."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from wattlm.serve.app import build_app
    from wattlm.serve.config import ServeConfig
    from wattlm.serve.windows import WindowedMeter
    from wattlm.testing.meters import FakeMeter

    from .conftest import ScriptedEngine

    cfg = ServeConfig(model="scripted.gguf", window_s=1000.0)
    wm = WindowedMeter(FakeMeter(energies_j=[3.0, 0.0, 0.0]))
    with TestClient(build_app(cfg, ScriptedEngine(), wm, replica="r1")) as client:
        usage = client.post("/v1/completions", json={"prompt": "a b", "max_tokens": 2}).json()[
            "usage"
        ]
        assert usage["replica"] == "r1" and usage["energy_j"] == pytest.approx(3.0)
        assert client.get("/health").json()["replica"] == "r1"
    plain = build_app(cfg, ScriptedEngine(), WindowedMeter(FakeMeter(power_w=1.0)))
    with TestClient(plain) as client:
        assert "replica" not in client.get("/health").json()


def test_a_replica_that_cannot_start_is_told_by_its_own_error_line():
    from types import SimpleNamespace as NS

    trace = 'Traceback ...\n  File "x"\nwattlm.errors.WattlmError: GGUF file not found: m.gguf (check)\n'
    app = NS(message="Failed to update", deployments={"wattlm": NS(message=trace)})
    fake = NS(status=lambda: NS(applications={ray_serve.APP_NAME: app}))
    assert ray_serve._replica_error(fake) == "GGUF file not found: m.gguf (check)"
    app.deployments["wattlm"].message = "ValueError: boom"
    assert ray_serve._replica_error(fake) == "ValueError: boom"
    assert "logs" in ray_serve._replica_error(NS(status=lambda: NS(applications={})))


def _tiny_torch_engine(cfg):
    from wattlm.serve.torch_engine import TorchEngine
    from wattlm.testing.tiny import tiny_causal_lm

    return TorchEngine(cfg, loaded=tiny_causal_lm())


@pytest.mark.slow
def test_two_local_replicas_answer_through_the_proxy_with_energy():
    _need_ray_serve()
    import ray
    from ray import serve

    from wattlm.serve._http import http_client_module
    from wattlm.serve.config import ServeConfig

    httpx = http_client_module()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        cfg = ServeConfig(
            model="tiny", backend="torch", port=0, slots=2, context_tokens=128, meter="estimate",
            api_key="k3y", window_s=0.2,
        )  # fmt: skip

        # a local function is shipped to the replicas by value (no test module import there)
        def factory(cfg):
            return _tiny_torch_engine(cfg)

        server = ray_serve.RayServer(cfg, RayOptions(replicas=2), engine_factory=factory)
        url = server.start()
        try:
            assert server.replica_cfg.threads == 1  # 2 CPUs / 2 replicas
            auth = {"Authorization": "Bearer k3y"}
            r = httpx.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2})
            assert r.status_code == 401  # the key rule holds behind the proxy
            seen: set[str] = set()
            for i in range(40):
                body = {"prompt": f"hello {i}", "max_tokens": 3}
                r = httpx.post(url + "/v1/completions", json=body, headers=auth, timeout=60)
                assert r.status_code == 200, r.text
                usage = r.json()["usage"]
                assert usage["completion_tokens"] >= 1
                assert usage["energy_j"] > 0 and usage["energy_source"].startswith("estimate")
                assert usage["attribution"] == "token-share-v1"
                seen.add(usage["replica"])
                if len(seen) == 2 and i >= 3:
                    break
            assert len(seen) == 2, seen
            health = httpx.get(url + "/health", timeout=30).json()
            assert health["status"] == "ok" and health["replica"] in seen
        finally:
            server.stop()
        assert not server._own_ray  # it used the Ray the test started
        names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)}
        assert not any(n.startswith("SERVE_") for n in names), names
        with pytest.raises(httpx.HTTPError):
            httpx.get(url + "/health", timeout=2)
        assert serve.context._global_client is None  # no Serve app left running
    finally:
        ray.shutdown()


@pytest.mark.slow
@pytest.mark.assets
def test_cli_serves_two_replicas_and_sigterm_leaves_no_process():
    """``wattlm serve GGUF --ray`` on its own local Ray: both replicas answer; SIGTERM → 0."""
    _need_ray_serve()
    import contextlib
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading
    import time

    from wattlm.serve._http import http_client_module

    from .test_llamacpp_serve import smollm2_gguf

    httpx = http_client_module()
    gguf = smollm2_gguf()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wattlm", "serve", str(gguf), "--ray", "--port", "0",
         "--slots", "1", "--context-tokens", "256", "--meter", "estimate"],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        url = None
        deadline = time.monotonic() + 300
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line or proc.poll() is None, "wattlm serve --ray exited before serving"
            if match := re.search(r"replicas .* at (http://\S+)/v1", line):
                url = match[1]
        assert url is not None
        # keep reading stderr so Ray's shutdown logs never block on a full pipe
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        seen = set()
        for i in range(40):
            body = {"prompt": f"The capital of France {i}", "max_tokens": 2}
            usage = httpx.post(url + "/v1/completions", json=body, timeout=120).json()["usage"]
            assert usage["energy_j"] > 0
            seen.add(usage["replica"])
            if len(seen) == 2:
                break
        assert len(seen) == 2, seen
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(120) == 0
        time.sleep(2)
        with pytest.raises(ProcessLookupError):  # Ray's processes went with it
            os.killpg(proc.pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
