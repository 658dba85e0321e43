"""machine.json: what a run was measured on and with."""

import datetime
import os
import platform
import re
import subprocess


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
        "trees": trees,
        "settings": settings,
    }
