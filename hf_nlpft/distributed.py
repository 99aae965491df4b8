"""What multi-process runs need beyond the Trainer's own handling."""

from torch import nn


def restore_model_class_name(model: nn.Module) -> None:
    """Give the class FSDP2 swaps in the name and module of the model's own class, so that saving works.

    `fully_shard` turns `model.__class__` into `FSDP<Name>`, a subclass created in torch's FSDP module.
    `save_pretrained` copies the file that defines the model's class as its remote code and names that class in
    `config.auto_map`, so the saved folder would hold torch's `_fsdp_*.py` files instead of `modeling_*.py`, and
    `trust_remote_code` loading would fail. The swapped class exists only for FSDP-wrapped instances of the model's
    class; renaming it changes nothing else. A no-op for any other model.
    """
    cls = type(model)
    if not cls.__module__.startswith("torch.distributed"):
        return
    own = next(base for base in cls.__mro__[1:] if not base.__module__.startswith("torch."))
    cls.__module__, cls.__name__, cls.__qualname__ = own.__module__, own.__name__, own.__qualname__
