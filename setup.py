"""Build of svcnet's one C extension; everything else is in pyproject.toml.

``svcnet.proxy.dataplanes._relaycore`` is optional: without a C compiler the build goes
on and the userspace dataplane uses the pure-Python relay core instead (see
``svcnet/proxy/dataplanes/_core.py``).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "svcnet.proxy.dataplanes._relaycore",
            ["src/svcnet/proxy/dataplanes/_relaycore.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers"],
            optional=True,
        ),
    ],
)
