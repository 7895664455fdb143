"""A fork server for worker processes: torch imported once, each worker forked from it in milliseconds.

A worker started with `python -m posgrade.grading.worker` spends about a second importing torch
before it can run anything. Where one grader starts many workers (grade-batch's grader processes,
posgrade watch, the project's own tests), a Zygote imports torch once and forks each worker from
itself: the fork is a fresh process that has never run learner code, and it becomes a worker
exactly as a started one does (worker.main: its own session, scratch folder, built environment,
sandbox, limits). Learner code still runs only in the forked worker.

    zygote = Zygote()                                    # python -m posgrade.grading.zygote
    proc = zygote.spawn(argv, env, cwd, fds, stderr_fd)  # a Popen-like handle, or None if it failed
    zygote.close()

The zygote itself is started with the worker's built environment (no token of the grader's, since
/proc/<pid>/environ of a fork shows the zygote's start environment), never initialises CUDA (a fork
after that is unsafe; CUDA workers are started the ordinary way), and reports each worker's end
(its wait status) through a pipe of that worker's, since only the zygote can wait for its children.

Protocol on a Unix socket pair, one message per spawn: the JSON {"argv", "env", "cwd"} with the
file descriptors (worker's input, worker's output, stderr, status pipe) attached (SCM_RIGHTS); the
reply is the forked pid as JSON.
"""

import array
import json
import os
import select
import signal
import socket
import subprocess
import sys

MAX_FDS = 4


class ForkedProcess:
    """What Worker needs of a Popen, for a worker forked by the zygote: pid, poll(), wait()."""

    def __init__(self, pid, status_r):
        self.pid = pid
        self._status_r = status_r
        self.returncode = None

    def _take(self, timeout):
        if self.returncode is not None:
            return True
        ready, _, _ = select.select([self._status_r], [], [], timeout)
        if not ready:
            return False
        text = os.read(self._status_r, 64)
        os.close(self._status_r)
        status = int(text) if text.strip() else 0
        if os.WIFSIGNALED(status):
            self.returncode = -os.WTERMSIG(status)
        else:
            self.returncode = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
        return True

    def poll(self):
        self._take(0)
        return self.returncode

    def wait(self, timeout=None):
        if not self._take(timeout):
            raise subprocess.TimeoutExpired("posgrade worker", timeout)
        return self.returncode


class Zygote:
    """The grader's side of the fork server."""

    def __init__(self, env=None):
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "posgrade.grading.zygote", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env, start_new_session=True)
        theirs.close()
        self._ready = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=120.0):
        """Wait until the zygote has imported torch (it says so with one byte); False if it did not."""
        if self._ready or not self.alive():
            return self._ready
        ready, _, _ = select.select([self._sock], [], [], timeout)
        self._ready = bool(ready) and self._sock.recv(1) == b"R"
        if not self._ready:
            self.close()
        return self._ready

    def spawn(self, argv, env, cwd, fds, stderr_fd):
        """Fork a worker running `python -m posgrade.grading.worker *argv`, with fds (its input and
        output pipes, which argv[0] and argv[1] name) and stdout/stderr to stderr_fd. A ForkedProcess,
        or None when the zygote could not do it (the caller then starts the worker itself)."""
        if not self.wait_ready():
            return None
        status_r, status_w = os.pipe()
        msg = json.dumps({"argv": list(argv), "env": env, "cwd": str(cwd)}).encode()
        try:
            self._sock.sendmsg([len(msg).to_bytes(4, "big") + msg],
                               [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [*fds, stderr_fd, status_w]))])
            os.close(status_w)
            ready, _, _ = select.select([self._sock], [], [], 30)
            reply = self._sock.recv(64) if ready else b""
            pid = int(json.loads(reply)["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            for fd in (status_r, status_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.close()
            return None
        return ForkedProcess(pid, status_r)

    def close(self):
        if self.proc is None:
            return
        try:
            self._sock.close()
            self.proc.wait(timeout=5)  # it ends when its socket closes
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# -- the zygote process (python -m posgrade.grading.zygote FD) ------------------------------------------

def _recv(sock):
    """(request dict, its fds) or (None, None) at the end."""
    head = b""
    fds = array.array("i")
    while len(head) < 4:
        data, ancdata, _, _ = sock.recvmsg(4 - len(head), socket.CMSG_LEN(MAX_FDS * fds.itemsize))
        if not data:
            return None, None
        head += data
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    size = int.from_bytes(head, "big")
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None, None
        body += chunk
    return json.loads(body), list(fds)


def _child(request, fds, sock, wake):
    """In the fork: become the worker that `python -m posgrade.grading.worker` would have been."""
    sock.close()
    signal.set_wakeup_fd(-1)
    for fd in wake:
        os.close(fd)
    pipe_fds, stderr_fd, status_w = fds[:-2], fds[-2], fds[-1]
    os.close(status_w)
    os.setsid()  # its own session and process group: the grader's kill takes its children too
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(stderr_fd, 1)
    os.dup2(stderr_fd, 2)
    argv = list(request["argv"])
    argv[0], argv[1] = str(pipe_fds[0]), str(pipe_fds[1])  # the pipes as this process numbers them
    keep = {0, 1, 2, *pipe_fds}
    for fd in (list(map(int, os.listdir("/proc/self/fd"))) if os.path.isdir("/proc/self/fd") else []):
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from posgrade.grading import worker

    sys.argv = ["posgrade.grading.worker", *argv]
    try:
        worker.main(sys.argv)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve(fd):
    import torch  # noqa: F401  the point of the zygote: imported once, before any fork

    from posgrade.grading import sandbox, worker  # noqa: F401  what each worker imports first
    from posgrade.kit import catalog, probes, wire  # noqa: F401

    for name in catalog.names():  # the references the worker keeps for speed requests
        __import__(f"posgrade.solutions.{name}")
    sock = socket.socket(fileno=fd)
    sock.sendall(b"R")  # ready: torch is imported
    status_of = {}  # pid -> the worker's status pipe
    wake_r, wake_w = os.pipe()  # SIGCHLD wakes the loop at once: a worker's end is told without delay
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [], 1.0)
        if wake_r in ready:
            try:
                os.read(wake_r, 4096)
            except BlockingIOError:
                pass
        while status_of:  # reap ended workers, and tell each grader handle how its worker ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in status_of:
                os.write(status_of[pid], str(status).encode())
                os.close(status_of.pop(pid))
        if sock not in ready:
            continue
        request, fds = _recv(sock)
        if request is None:
            break
        pid = os.fork()
        if pid == 0:
            _child(request, fds, sock, (wake_r, wake_w))
        for received in fds[:-1]:
            os.close(received)
        status_of[pid] = fds[-1]
        sock.sendall(json.dumps({"pid": pid}).encode())
    for pid, status_w in status_of.items():  # the grader is gone: so are its workers
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os.close(status_w)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
