"""A dropped SSH connection, for real: sshd on loopback, tmux, kill both, log in, attach.

The set-up installs Debian's openssh-server when it is missing and the test runs as root
(CI does); elsewhere the test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.core.events import iter_all_events, read_status
from tests.conftest import REPO_ROOT
from tests.integration.test_training import SAMPLE

SSHD = Path("/usr/sbin/sshd")


def _ensure_sshd() -> str | None:
    """Install openssh-server if possible; the reason to skip otherwise."""
    if shutil.which("tmux") is None:
        return "tmux is not installed"
    if SSHD.exists():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "openssh-server is missing and cannot be installed here (needs root + apt)"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq",
                                                   "openssh-server"]):  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        if done.returncode != 0:
            return f"could not install openssh-server: {done.stderr.strip()[-300:]}"
    return None if SSHD.exists() else "openssh-server installed no /usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A throwaway sshd on 127.0.0.1 that accepts one throwaway key; yields an ssh argv."""
    reason = _ensure_sshd()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "user_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)],
                       check=True)  # fmt: skip
    shutil.copy(root / "user_key.pub", root / "authorized_keys")
    port = _free_port()
    (root / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {root / 'host_key'}\n"
        f"AuthorizedKeysFile {root / 'authorized_keys'}\nPidFile {root / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin yes\nPermitUserEnvironment no\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
    server = subprocess.Popen(
        [str(SSHD), "-D", "-f", str(root / "sshd_config"), "-E", str(root / "sshd.log")]
    )
    ssh = ["ssh", "-i", str(root / "user_key"), "-p", str(port), "-o", "BatchMode=yes",
           "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
           "-o", "LogLevel=ERROR", f"{os.environ.get('USER', 'root')}@127.0.0.1"]  # fmt: skip
    deadline = time.monotonic() + 20
    while subprocess.run([*ssh, "true"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            server.kill()
            pytest.skip(f"sshd did not accept the key: {(root / 'sshd.log').read_text()[-400:]}")
        time.sleep(0.3)
    yield ssh
    server.terminate()
    server.wait(10)


def _remote(ssh: list[str], command: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh, command], capture_output=True, text=True, **kwargs)


def test_a_run_survives_the_ssh_connection_and_tmux_dying(
    sshd, tiny_model_dir, tunedeck_home, tmp_path
) -> None:
    env = f"TUNEDECK_HOME={tunedeck_home} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1"
    tunedeck = f"cd {REPO_ROOT} && env {env} {sys.executable} -m tui.cli"
    train = (f"{tunedeck} train --data {SAMPLE} --model {tiny_model_dir} --max-steps 120 "
             "--set max_seq_len=256 --set micro_batch_size=2 --set eval_steps=20 "
             "--set save_steps=20 --set logging_steps=2 --follow")  # fmt: skip
    socket_name = f"td{os.getpid()}"
    # Session 1: an interactive login (-tt) whose tmux runs `tunedeck train --follow`.
    session = subprocess.Popen(
        [*sshd, "-tt", f"tmux -L {socket_name} new-session -s td -x 100 -y 30 '{train}'"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    runs = tunedeck_home / "runs"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run_dirs = list(runs.glob("*/status.json")) if runs.exists() else []
        status = read_status(run_dirs[0].parent) if run_dirs else None
        if status is not None and status.step >= 6:
            break
        time.sleep(0.2)
    else:
        session.kill()
        pytest.fail("the run did not start through ssh + tmux")
    run_dir = run_dirs[0].parent
    step_at_drop = read_status(run_dir).step

    # The connection drops and the tmux session dies with everything in it.
    session.send_signal(signal.SIGKILL)
    session.wait(10)
    subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True)
    assert subprocess.run(["tmux", "-L", socket_name, "has-session"],
                          capture_output=True).returncode != 0  # fmt: skip

    # Log in again and attach: the whole history, and the run went on to the end.
    attach = _remote(sshd, f"{tunedeck} attach {run_dir.name} --text", timeout=300)
    assert attach.returncode == 0, attach.stdout + attach.stderr
    assert "[completed]" in attach.stdout
    listing = json.loads(_remote(sshd, f"{tunedeck} runs --json", timeout=60).stdout)
    assert listing[0]["state"] == "completed" and listing[0]["step"] == 120
    assert listing[0]["step"] > step_at_drop
    steps = [e["step"] for e in iter_all_events(run_dir)
             if e["type"] == "metric" and e["split"] == "train"]  # fmt: skip
    assert steps == list(range(2, 121, 2))  # nothing missing from the curve
