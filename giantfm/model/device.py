"""Choosing the torch device the network runs on."""
import torch

__all__ = ["select_device", "available_devices"]


def select_device(device=None):
    """The `torch.device` to use, checked to exist.

    Parameters
    ----------
    device : str, `torch.device` or None
        None or ``'auto'``: the first CUDA device when one is available, else
        the CPU (Apple ``'mps'`` is used only when asked for). Otherwise
        ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or ``'mps'``.

    Raises
    ------
    ValueError
        For a string that is not a device name or a device type giantfm does not support.
    RuntimeError
        For a device that is not present on this machine (or in this torch build).
    """
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device.strip().lower() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a device name; use 'auto', 'cpu', "
                         "'cuda', 'cuda:N' or 'mps'") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was asked for, but CUDA is not available "
                               f"(torch {torch.__version__}, built with CUDA "
                               f"{torch.version.cuda}); use device='cpu' or 'auto'")
        count = torch.cuda.device_count()
        index = 0 if dev.index is None else dev.index
        if index >= count:
            raise RuntimeError(f"device {device!r} was asked for, but this machine has "
                               f"{count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise RuntimeError(f"device {device!r} was asked for, but Apple MPS is not "
                               "available on this machine; use device='cpu' or 'auto'")
        return dev
    raise ValueError(f"device type {dev.type!r} is not supported; use 'auto', 'cpu', 'cuda', "
                     "'cuda:N' or 'mps'")


def available_devices():
    """Names of the devices giantfm can run on here, e.g. ``['cpu', 'cuda:0']``."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names
