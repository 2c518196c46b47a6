"""MIP's generated instance prompts as one vector per image (the paper's Figure 3).

The generation-based IPG gives each prompted layer ``T`` prompt tokens per image;
the vector drawn is the mean over the tokens of the last prompted layer, from the
evaluation forward (``forward_features(x, modality, camid) -> (features, prompts)``).
A model has them when its attention layout (``attention_spec()``) declares an
'instance prompts' token group.
"""
import torch

from .attention import attention_layout, has_attention_layout

__all__ = ['INSTANCE_PROMPTS', 'has_instance_prompts', 'instance_prompt_vectors']

INSTANCE_PROMPTS = 'instance prompts'   # the token group's name in ``attention_spec()``


def has_instance_prompts(model):
    return has_attention_layout(model) and INSTANCE_PROMPTS in attention_layout(model).groups


@torch.no_grad()
def instance_prompt_vectors(model, images, modality, camid):
    """(B, D) mean instance prompt of the last prompted layer of each image."""
    model.eval()
    _, prompts = model.forward_features(images, modality, camid)
    if not prompts:
        raise ValueError('this MIP model generates no instance prompts (mip.instance_prompts)')
    return prompts[-1].float().mean(1).cpu()
