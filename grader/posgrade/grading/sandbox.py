"""The kernel-enforced sandbox of the worker process: what learner code can and cannot reach.

The grader plans it (`plan`), the worker applies it before importing any learner file:

    enter_namespaces(config)   at the worker's start, before torch: a new pid namespace (and a user
                               namespace when not root), so every process learner code starts dies
                               with the worker (the namespace's init ends, the kernel kills the rest)
    restrict(config)           after torch and the worker's own modules are imported: as root, drop to
                               an unprivileged uid (or, where Python itself is unreadable to one, stay
                               uid 0 with every capability dropped); then Landlock: writes only in the
                               scratch folder and /dev/null, reads only Python, its site-packages and
                               system libraries (never posgrade's package, solutions or the workspace),
                               no TCP bind/connect (ABI 4+), no signals or abstract unix sockets outside
                               the worker's own processes (ABI 6+)

Landlock is called through ctypes on its three syscalls (444-446 on x86_64 and aarch64), no
package needed. Where the kernel has no Landlock, or POSGRADE_SANDBOX=off, grading still works
and every result carries the note "learner code was not sandboxed: <reason>".
"""

import ctypes
import errno
import os
import platform
import stat
import sys

SWITCH = "POSGRADE_SANDBOX"  # "off" switches the sandbox off (the project's tests; a teacher's explicit choice)
NOBODY = 65534  # uid and gid the worker drops to when posgrade runs as root

# -- Landlock's ABI (include/uapi/linux/landlock.h) ------------------------------------------------
SYS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446), "arm64": (444, 445, 446)}
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38

FS_EXECUTE, FS_WRITE_FILE, FS_READ_FILE, FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
FS_ABI1 = (1 << 13) - 1  # execute .. make_sym
FS_REFER, FS_TRUNCATE, FS_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV  # allowed on a non-directory
READ = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 0x2, 0x4, 0x8, 0x4000, 0x40000


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    return _libc


def _err(what):
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {errno.errorcode.get(code, code)} ({os.strerror(code)})")


def landlock_abi():
    """(ABI version, "") where the kernel offers Landlock, else (0, the reason)."""
    if sys.platform != "linux":
        return 0, f"no Landlock on {sys.platform}"
    numbers = SYS.get(platform.machine())
    if numbers is None:
        return 0, f"Landlock's syscall numbers are not known for {platform.machine()}"
    abi = _c().syscall(numbers[0], None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    if abi < 0:
        code = ctypes.get_errno()
        why = {errno.ENOSYS: "the kernel has no Landlock (Linux 5.13+ with CONFIG_SECURITY_LANDLOCK)",
               errno.EOPNOTSUPP: "Landlock is disabled at boot (lsm= does not list landlock)",
               errno.EPERM: "a seccomp filter (container) forbids Landlock's syscalls"}
        return 0, why.get(code, f"landlock_create_ruleset failed: {errno.errorcode.get(code, code)}")
    return int(abi), ""


def handled(abi):
    """(filesystem, network, scope) rights this ABI can restrict: all of them are restricted."""
    fs = FS_ABI1 | (FS_REFER if abi >= 2 else 0) | (FS_TRUNCATE if abi >= 3 else 0) | (FS_IOCTL_DEV if abi >= 5 else 0)
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scope = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    return fs, net, scope


def features(abi):
    """Words for what this ABI lets the sandbox enforce (for doctor and the README)."""
    out = ["filesystem read/write/execute"]
    if abi >= 2:
        out.append("refer (renames across folders)")
    if abi >= 3:
        out.append("truncate")
    if abi >= 4:
        out.append("TCP bind/connect")
    if abi >= 5:
        out.append("device ioctl")
    if abi >= 6:
        out.append("signals and abstract unix sockets outside the worker")
    return out


def disabled():
    return os.environ.get(SWITCH, "").strip().lower() in ("off", "0", "no", "false")


# -- the grader's side ---------------------------------------------------------------------------
def kit_paths():
    """Folders learner code must not read: posgrade's package (cases, mistakes), the reference
    solutions and the stubs, wherever they are installed."""
    import posgrade

    paths = [os.path.dirname(os.path.realpath(posgrade.__file__))]
    for sub in ("solutions", "exercises"):
        try:
            import importlib.util

            spec = importlib.util.find_spec(f"posgrade.{sub}")
            paths += [os.path.realpath(p) for p in (spec.submodule_search_locations or [])]
        except (ImportError, ValueError):
            pass
    return sorted(set(paths))


def plan(scratch, workspace, cuda):
    """The sandbox the worker applies to itself (plain data for its command line)."""
    if disabled():
        return {"off": f"switched off ({SWITCH}={os.environ.get(SWITCH)})"}
    abi, reason = landlock_abi()
    return {
        "scratch": os.path.realpath(scratch),
        "hidden": kit_paths() + [os.path.realpath(workspace)],
        "cuda": bool(cuda),
        "abi": abi,
        "no_landlock": reason,
        "uid": None,
    } | _who(os.geteuid() == 0)


def _unreadable():
    return [p for p in (sys.base_prefix, sys.prefix, *sys.path) if p and not _open_to_others(p)]


def _who(root):
    """As root: an unprivileged uid, or, where Python itself is unreadable to one (a pyenv under
    /root), uid 0 with every capability dropped."""
    if not root:
        return {}
    unreadable = _unreadable()
    if unreadable:
        return {"caps_only": f"runs as uid 0 with no capabilities: {unreadable[0]} is not readable by an "
                             f"unprivileged user"}
    return {"uid": NOBODY}


def prepare_scratch(config):
    """As root: the scratch folder belongs to the worker's uid, the only place that uid owns."""
    uid = config.get("uid")
    if uid is None or "scratch" not in config:
        return
    for folder, dirs, files in os.walk(config["scratch"]):
        os.chown(folder, uid, uid)
        for name in files:
            os.chown(os.path.join(folder, name), uid, uid)


def environment(scratch, cuda, inherited=None):
    """The worker's environment, built from nothing: no tokens, no CI variables reach learner code."""
    inherited = os.environ if inherited is None else inherited
    env = {
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), "/usr/local/bin", "/usr/bin", "/bin"]),
        "HOME": scratch,
        "TMPDIR": os.path.join(scratch, "tmp"),
        "LANG": inherited.get("LANG", "C.UTF-8"),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONFAULTHANDLER": "1",
        "PYTHONNOUSERSITE": "1",
    }
    keep = ("LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH", "LD_LIBRARY_PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "CUDA_MODULE_LOADING",
            "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "PYTORCH_CUDA_ALLOC_CONF",
            "CUBLAS_WORKSPACE_CONFIG")
    env.update({k: inherited[k] for k in keep if k in inherited})
    if not cuda:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def note(status):
    """The line every result carries when learner code ran without the sandbox, else None."""
    if status and status.get("landlock"):
        return None
    reason = (status or {}).get("reason") or "the worker did not report its sandbox"
    return f"learner code was not sandboxed: {reason}"


# -- the worker's side ---------------------------------------------------------------------------
def die_with_parent():
    """SIGKILL this process when the process that started it ends: a grader killed from outside
    (a CI's hard time-out, kill -9) leaves no worker running learner code on, its init and the
    pid namespace's processes with it (enter_namespaces). Exits at once if that process is gone."""
    if sys.platform != "linux":
        return
    parent = os.getppid()
    _c().prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above
        os._exit(1)


def _namespace_flags():
    # root needs no user namespace; anyone else needs one to hold the rights to make the others
    return CLONE_NEWPID | CLONE_NEWNS | (0 if os.geteuid() == 0 else CLONE_NEWUSER)


def _map_ids(uid, gid):
    """In a new user namespace: map ourselves to ourselves, so files we write keep our uid."""
    for name, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def _mount_proc():
    """A /proc of the new pid namespace's own, in its own mount namespace ("" or why not).

    The inherited /proc shows the outer namespace, where the number getpid() returns here (2) is
    some other process: CUDA's driver then fails to start (cudaGetDeviceCount: error 304), and any
    code that reads /proc/<getpid()> reads a stranger. Mounts are made private first, so nothing
    done here reaches the grader's mount namespace."""
    libc = _c()
    if libc.mount(b"none", b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None) != 0:
        return str(_err("mount(/, private)"))
    if libc.mount(b"proc", b"/proc", b"proc", ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC), None) != 0:
        return str(_err("mount(proc, /proc)"))
    return ""


def _unshare(flags):
    """unshare(flags), then the id maps a new user namespace needs ("" or why not)."""
    uid, gid = os.getuid(), os.getgid()
    if _c().unshare(flags) != 0:
        return str(_err("unshare(CLONE_NEWPID)"))
    if flags & CLONE_NEWUSER:
        try:
            _map_ids(uid, gid)
        except OSError as err:
            return f"user namespace maps: {err}"
    return ""


def _probe_namespaces():
    """(why no pid namespace, why no /proc of its own), each "" when possible: tried in a
    throw-away child (a container's seccomp may forbid unshare; one that masks parts of /proc
    forbids the mount)."""
    if sys.platform != "linux":
        return "no pid namespaces here", "no pid namespaces here"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child answers on w: "ns\0proc", and nothing it does survives it
        try:
            os.close(r)
            why_ns = why_proc = _unshare(_namespace_flags())
            if not why_ns:
                r2, w2 = os.pipe()
                child = os.fork()
                if child == 0:
                    try:
                        os.write(w2, _mount_proc().encode()[:500])
                    finally:
                        os._exit(0)
                os.close(w2)
                os.waitpid(child, 0)
                why_proc = os.read(r2, 600).decode(errors="replace")
            os.write(w, f"{why_ns}\0{why_proc}".encode()[:1200])
        finally:
            os._exit(0)
    os.close(w)
    text = os.read(r, 1300).decode(errors="replace")
    os.close(r)
    os.waitpid(pid, 0)
    why_ns, _, why_proc = text.partition("\0")
    return why_ns, why_proc


def enter_namespaces(config, close_fds=()):
    """Make the rest of this process run as pid 2 of a new pid namespace, under a tiny init (pid 1),
    with a /proc of its own (in a mount namespace of its own). Where that mount is refused, a CPU
    worker keeps the inherited /proc, and a CUDA worker, whose driver cannot start with it, gets
    no namespace at all (the grader then kills its process group, as without namespaces).

    The process that called this (started by the grader) stays outside and waits, then ends the
    way the worker ended (exit code or signal), so the grader sees the worker's own end. When the
    worker ends, init ends, and the kernel kills every process left in the namespace: a learner's
    double-forked daemon included. Returns "" in the worker, or why no namespace was made; the
    worker's pid as the grader sees it goes into config["pid"]."""
    if "off" in config or sys.platform != "linux":
        return config.get("off", "no pid namespaces here")
    if config.get("cuda"):
        why_ns, why_proc = _probe_namespaces()
        if why_proc and not why_ns:
            return f"CUDA cannot start in a pid namespace without a /proc of its own ({why_proc})"
    why = _unshare(_namespace_flags())
    if why:
        return why
    status_r, status_w = os.pipe()
    init = os.fork()
    if init == 0:
        os.close(status_r)
        worker = os.fork()
        if worker == 0:
            os.close(status_w)
            # the outer /proc still shows this process under the number the grader knows it by
            config["pid"] = int(os.readlink("/proc/self"))
            config["proc"] = _mount_proc() or "own"
            return ""
        for fd in close_fds:
            os.close(fd)
        _c().prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG: SIGKILL when the outer process dies
        status = 0
        while True:  # init: reap every orphan until the worker itself has ended
            try:
                pid, st = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == worker:
                status = st
                break
        os.write(status_w, str(status).encode())
        os._exit(0)  # the kernel now kills everything left in the namespace
    os.close(status_w)
    for fd in close_fds:
        os.close(fd)
    _, st = os.waitpid(init, 0)
    text = os.read(status_r, 64)
    if text and os.WIFEXITED(st):
        st = int(text)
    if os.WIFSIGNALED(st):
        import resource
        import signal

        sig = os.WTERMSIG(st)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if sig not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(st) if os.WIFEXITED(st) else 1)


def _open_to_others(path):
    """Can a user who owns nothing read `path` (every folder above it searchable by others)?"""
    parts = os.path.realpath(path).split(os.sep)
    for i in range(2, len(parts) + 1):
        try:
            mode = os.stat(os.sep.join(parts[:i]) or os.sep).st_mode
        except OSError:
            return True  # not there: nothing to lose
        if stat.S_ISDIR(mode) and not mode & stat.S_IXOTH:
            return False
    return True


def _read_roots(config):
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sys.path if p and os.path.isdir(p))
    roots.update(["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/ld.so.conf",
                  "/etc/ld.so.conf.d", "/etc/localtime", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
                  "/proc/self", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/sys/devices/system/cpu",
                  "/sys/fs/cgroup", "/dev/urandom", "/dev/random", "/dev/zero"])
    if config.get("cuda"):
        roots.update(["/proc/driver/nvidia", "/sys/bus/pci", "/sys/devices", "/sys/module/nvidia"])
    return roots


def _add(ruleset, path, rights):
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # not on this machine
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= FILE_RIGHTS
        attr = _PathBeneath(rights, fd)
        if _c().syscall(SYS[platform.machine()][1], ruleset, RULE_PATH_BENEATH, ctypes.byref(attr), 0) < 0:
            raise _err(f"landlock_add_rule({path})")
    finally:
        os.close(fd)


def _grant_read(ruleset, path, hidden, rights):
    """Read (and execute) beneath path, except beneath the hidden folders (Landlock only adds
    rights, so a folder that holds a hidden one is opened entry by entry)."""
    real = os.path.realpath(path)
    if any(real == h or real.startswith(h + os.sep) for h in hidden):
        return
    inside = [h for h in hidden if h.startswith(real.rstrip(os.sep) + os.sep)]
    if not inside:
        _add(ruleset, real, rights)
        return
    _add(ruleset, real, FS_READ_DIR & rights)  # its names only
    try:
        entries = os.listdir(real)
    except OSError:
        return
    for name in entries:
        _grant_read(ruleset, os.path.join(real, name), hidden, rights)


def _drop_root(config, status):
    """uid 0 -> the planned unprivileged uid; or, where the plan says so, uid 0 stays but every
    capability goes, for good (securebits: exec cannot regain them)."""
    if config.get("uid") is not None:
        os.setgroups([])
        os.setgid(config["uid"])
        os.setuid(config["uid"])
        status["uid"] = config["uid"]
        return
    libc = _c()
    # PR_SET_SECUREBITS: NOROOT, NO_SETUID_FIXUP, KEEP_CAPS off, each locked
    if libc.prctl(28, 0x1 | 0x2 | 0x4 | 0x8 | 0x20, 0, 0, 0) != 0:
        raise _err("prctl(PR_SET_SECUREBITS)")
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last capability)
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    _drop_capabilities()
    status["uid"] = 0
    status["caveat"] = config["caps_only"]


def _drop_capabilities():
    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    data = (Data * 2)()
    if _c().capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:
        raise _err("capset")


def restrict(config):
    """Apply the planned sandbox to this process, for good; a status dict for the grader:
    {"landlock": ABI used or 0, "reason": why not, "uid": ..., "features": [...]}."""
    status = {"landlock": 0, "reason": "", "uid": os.getuid(), "pid_namespace": config.get("pidns", ""),
              "proc": config.get("proc", "")}
    if "off" in config:
        status["reason"] = config["off"]
        return status
    abi = config.get("abi", 0)
    ruleset = -1
    if abi:
        fs, net, scope = handled(abi)
        attr = _RulesetAttr(fs, net, scope)
        size = 8 if abi < 4 else 16 if abi < 6 else 24
        numbers = SYS[platform.machine()]
        ruleset = _c().syscall(numbers[0], ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
        if ruleset < 0:
            status["reason"] = str(_err("landlock_create_ruleset"))
        else:
            try:
                hidden = config["hidden"]
                for root in sorted(_read_roots(config)):
                    _grant_read(ruleset, root, hidden, READ)
                _add(ruleset, config["scratch"], fs)
                _add(ruleset, "/dev/null", FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE | FS_IOCTL_DEV)
                if config.get("cuda"):
                    for name in os.listdir("/dev"):
                        if name.startswith("nvidia"):
                            _add(ruleset, f"/dev/{name}", FS_READ_FILE | FS_WRITE_FILE | FS_IOCTL_DEV)
            except OSError as err:
                status["reason"] = str(err)
                os.close(ruleset)
                ruleset = -1
    else:
        status["reason"] = config.get("no_landlock") or "the kernel has no Landlock"
    if (config.get("uid") is not None or config.get("caps_only")) and os.geteuid() == 0:
        _drop_root(config, status)  # after the rules are made: the dropped uid could not open /root/...
    if ruleset >= 0:
        libc = _c()
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            status["reason"] = str(_err("prctl(PR_SET_NO_NEW_PRIVS)"))
        elif libc.syscall(SYS[platform.machine()][2], ruleset, ctypes.c_uint32(0)) < 0:
            status["reason"] = str(_err("landlock_restrict_self"))
        else:
            status["landlock"] = abi
            status["features"] = features(abi)
        os.close(ruleset)
    return status


# -- posgrade doctor -----------------------------------------------------------------------------
def available():
    """(True, "") when learner code will be sandboxed on this machine, else (False, the reason)."""
    if disabled():
        return False, f"switched off ({SWITCH}={os.environ.get(SWITCH)})"
    abi, reason = landlock_abi()
    return bool(abi), reason


def describe():
    """Lines saying which protections are active on this machine (posgrade doctor)."""
    abi, reason = landlock_abi()
    lines = []
    if disabled():
        return [f"sandbox: OFF ({SWITCH}={os.environ.get(SWITCH)}): learner code is not sandboxed "
                f"(no Landlock, no pid namespace, no change of user)",
                "environment: built for the worker (PATH, HOME, LANG, torch/CUDA variables; nothing else)",
                "kit files: hashes checked at the start and end of every run"]
    if abi:
        lines.append(f"Landlock: ABI {abi}: {', '.join(features(abi))}")
    else:
        lines.append(f"Landlock: not available ({reason}): learner code is not sandboxed")
    ns, proc = _probe_namespaces()
    if ns:
        lines.append(f"processes: process-group kill only ({ns}); a daemonised child may survive")
    elif proc:
        lines.append(f"processes: a pid namespace per worker (learner processes die with it), but no /proc of "
                     f"its own ({proc}): CUDA workers run without the namespace")
    else:
        lines.append("processes: a pid namespace per worker with a /proc of its own (learner processes die "
                     "with it)")
    if os.geteuid() == 0:
        unreadable = _unreadable()
        lines.append(f"user: running as root; workers drop to uid {NOBODY}" if not unreadable else
                     f"user: running as root; workers keep uid 0 with no capabilities ({unreadable[0]} is not "
                     f"readable by an unprivileged user)")
    else:
        lines.append(f"user: uid {os.getuid()} (not root): workers run as this user")
    lines.append("environment: built for the worker (PATH, HOME, LANG, torch/CUDA variables; nothing else)")
    lines.append("kit files: hashes checked at the start and end of every run")
    return lines
