"""machine.json: what a run was measured on and with."""

import datetime
import os
import platform
import re
import subprocess
import time


def _run(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _os_release():
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
        return fields.get("PRETTY_NAME", "").strip('"') or None
    except OSError:
        return None


def _governor():
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor") as f:
            return f.read().strip()
    except OSError:
        return None


def _cmake_cache(build_dir):
    wanted = ("CMAKE_BUILD_TYPE", "CMAKE_CXX_COMPILER", "CMAKE_CXX_FLAGS",
              "CMAKE_CXX_FLAGS_RELEASE", "CMAKE_EXE_LINKER_FLAGS", "CMAKE_GENERATOR",
              "CTXTREE_WERROR", "CTXTREE_SANITIZER")
    out = {}
    try:
        with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
            for line in f:
                m = re.match(r"^([A-Za-z_]+):[A-Z]+=(.*)$", line.rstrip("\n"))
                if m and m.group(1) in wanted:
                    out[m.group(1)] = m.group(2)
    except OSError:
        pass
    return out


def _dpkg_version(pkg):
    return _run(["dpkg-query", "-W", "-f=${Version}", pkg])


def glibc_version():
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").replace("glibc ", "") or None
    except (ValueError, OSError):
        return None


def cpu_times():
    """The aggregate `cpu` line of /proc/stat: (total jiffies, steal jiffies), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already
    # counted in user/nice.
    return sum(fields[:8]), (fields[7] if len(fields) > 7 else 0)


def steal_percent(before, after):
    """Share of CPU time stolen by the hypervisor between two cpu_times() samples."""
    if not before or not after or after[0] <= before[0]:
        return None
    return round(100.0 * (after[1] - before[1]) / (after[0] - before[0]), 2)


def sample_load(seconds=1.0):
    """Load averages and the steal share over a short window: what the machine was doing when a
    run started or ended."""
    t0 = cpu_times()
    time.sleep(seconds)
    t1 = cpu_times()
    return {"load_average": [round(x, 2) for x in os.getloadavg()],
            "steal_percent": steal_percent(t0, t1), "cpu_times": t1}


def go_runtime_env():
    """GOMAXPROCS and GOGC the Go peer runs with (Go's defaults unless the environment sets
    them; multithreaded rows raise GOMAXPROCS to their thread count)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count()
    return {"GOMAXPROCS": os.environ.get("GOMAXPROCS") or str(cpus),
            "GOMAXPROCS_from_env": "GOMAXPROCS" in os.environ,
            "GOGC": os.environ.get("GOGC") or "100",
            "GOGC_from_env": "GOGC" in os.environ}


def collect(repo, build_dir, go_bin, gbench_context, trees, settings):
    cache = _cmake_cache(build_dir)
    compiler = cache.get("CMAKE_CXX_COMPILER")
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo)
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _mem_total_bytes(),
        "os": _os_release(),
        "kernel": platform.release(),
        "cpu_governor": _governor(),
        "load_average_start": settings.pop("load_average_start", None),
        "load_average_end": list(os.getloadavg()),
        "glibc": glibc_version(),
        "compiler": compiler,
        "compiler_version": (_run([compiler, "--version"]) or "").splitlines()[0] if compiler else None,
        "cmake_cache": cache,
        "libraries": {
            "libbenchmark-dev": _dpkg_version("libbenchmark-dev"),
            "libgtest-dev": _dpkg_version("libgtest-dev"),
            "libtbb-dev": _dpkg_version("libtbb-dev"),
            "golang": _run([go_bin, "version"]) if go_bin else None,
        },
        "gbench_library_build_type": gbench_context.get("library_build_type"),
        "gbench_cpu_scaling_enabled": gbench_context.get("cpu_scaling_enabled"),
        "gbench_mhz_per_cpu": gbench_context.get("mhz_per_cpu"),
        "gbench_caches": gbench_context.get("caches"),
        "git_commit": _run(["git", "rev-parse", "HEAD"], cwd=repo),
        "git_dirty": bool(status) if status is not None else None,
        "git_dirty_files": [line.split(maxsplit=1)[-1] for line in status.splitlines()][:20]
        if status else [],
        "trees": trees,
        "settings": settings,
    }
