"""The Lab sidebar names the Dask cluster a running scheduler host sends its tasks to, with a link
to the cluster's dashboard.

A real ``dask scheduler`` and ``dask worker``, and a real ``nbflow scheduler -e dask`` daemon on
the session Lab's store, run one task there; the sidebar then shows the line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.request
import uuid
from pathlib import Path

import pytest

from .conftest import Lab, LabPage
from .test_labextension import NbflowUI

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_sidebar_names_a_hosts_dask_cluster_and_links_its_dashboard(
    nbflow_lab: Lab, lab_page: LabPage, tmp_path: Path,
) -> None:
    address = f"tcp://127.0.0.1:{_free_port()}"
    dag_id = f"on_cluster_{uuid.uuid4().hex[:8]}"
    dag_file = tmp_path / f"{dag_id}.py"  # outside the Lab's dags_folder: only the daemon runs it
    dag_file.write_text(textwrap.dedent(f"""
        from nbflow import DAG, task

        with DAG({dag_id!r}, schedule="@once", start_date="2024-01-01", timezone="UTC") as d:
            @task
            def hello():
                return "hello from a Dask worker"

            hello()
    """))
    processes: list[subprocess.Popen[bytes]] = []
    log = (tmp_path / "processes.log").open("ab")
    try:
        port = address.rsplit(":", 1)[1]
        for args in (["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", port, "--dashboard-address", ":0"],
                     ["distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard"]):
            processes.append(subprocess.Popen([sys.executable, "-m", *args], stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True))
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBFLOW_")}
        env.update(NBFLOW_HOME=str(nbflow_lab.nbflow_home), NBFLOW_HEARTBEAT_INTERVAL="0.5",
                   NBFLOW_POLL_INTERVAL="0.2", NBFLOW_DASK_ADDRESS=address,
                   NBFLOW_DASK_KEEP_OUTPUTS_OVER="10")  # the task's 26 bytes stay on the cluster
        processes.append(subprocess.Popen([sys.executable, "-m", "nbflow", "scheduler", "-e", "dask", "-f", str(dag_file)],
                                          env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True))
        page = lab_page.page
        page.goto(nbflow_lab.url(f"lab/workspaces/t{uuid.uuid4().hex[:12]}"), wait_until="domcontentloaded")
        page.wait_for_function("() => !!window.jupyterapp", timeout=30_000)
        page.evaluate("async () => { await window.jupyterapp.restored; }")
        page.click('li.lm-TabBar-tab[data-id="nbflow-sidebar"]')
        line_js = """(address) => {
            const line = Array.from(document.querySelectorAll('#nbflow-sidebar .nbflow-ClusterLine'))
                .find(l => l.innerText.includes(address));
            const link = line && line.querySelector('a');
            return line ? {text: line.innerText, href: link ? link.href : null} : null;
        }"""
        seen: list[dict[str, str] | None] = [None]

        def shown() -> bool:
            for _ in range(1):
                page.click("#nbflow-sidebar .nbflow-Refresh")  # as a person waiting would
            seen[0] = page.evaluate(line_js, address)
            return bool(seen[0] and seen[0]["href"])

        lab_page.wait_for(shown, "the sidebar to name the daemon's Dask cluster with its dashboard", timeout=120,
                          details=lambda: str(seen[0]) + "\n" + (tmp_path / "processes.log").read_text()[-2000:])
        assert seen[0] is not None
        assert f"daemon: tasks run on the Dask cluster {address}" in seen[0]["text"]
        with urllib.request.urlopen(seen[0]["href"], timeout=30) as answer:  # the cluster's own dashboard
            assert answer.status == 200
        lab_page.screenshot("cluster-line")

        # the DAG view's details of the task name the worker that ran its try
        ui = NbflowUI(lab_page)
        ui.click_in_row(dag_id, ".nbflow-DagName")
        ui.wait_graph(dag_id, lambda g: any(n["id"] == "hello" and n["state"] == "success" for n in g["nodes"]),
                      "the task to show as succeeded", timeout=60)
        ui.click_task(dag_id, "hello")
        worker = ui.page.locator(f"#nbflow-dag-{dag_id} .nbflow-Facts tr", has_text="worker").locator("td")
        lab_page.wait_for(lambda: worker.count() == 1 and worker.inner_text().startswith("tcp://127.0.0.1:"),
                          "the details to name the worker", details=lambda: ui.details_text(dag_id))
        assert worker.inner_text() != address  # a worker's own address, not the scheduler's
        # its output stayed on the cluster: the details say so, with the preview the store kept
        details = ui.details_text(dag_id)
        assert "str · kept on the Dask cluster · 26 bytes" in details, details
        assert "'hello from a Dask worker'" in details, details
        lab_page.screenshot("worker-in-details")
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM if process is processes[-1] else signal.SIGKILL)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        log.close()
