"""torch.compile of an example's eager function, built on its first call (not at import)."""
import torch


def compiled(fn):
    """fn compiled by Inductor on first use; compiled in this thread, so no worker pool outlives a call."""
    built = {}

    def call(x):
        if "fn" not in built:
            import torch._inductor.config as inductor_config

            inductor_config.compile_threads = 1
            built["fn"] = torch.compile(fn, dynamic=False)
        return built["fn"](x)

    return call
