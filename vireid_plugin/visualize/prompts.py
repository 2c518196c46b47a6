"""MIP's generated instance prompts as one vector per image (the paper's Figure 3).

The generation-based IPG gives each prompted layer ``T`` prompt tokens per image;
the vector drawn is the mean over the tokens of the last prompted layer, from the
evaluation forward (``MIPReID.forward_features``).
"""
import torch

__all__ = ['has_instance_prompts', 'instance_prompt_vectors']


def has_instance_prompts(model):
    return type(model).__name__ == 'MIPReID' and getattr(model, 'instance', None) is not None


@torch.no_grad()
def instance_prompt_vectors(model, images, modality, camid):
    """(B, D) mean instance prompt of the last prompted layer of each image."""
    model.eval()
    _, prompts = model.forward_features(images, modality, camid)
    if not prompts:
        raise ValueError('this MIP model generates no instance prompts (mip.instance_prompts)')
    return prompts[-1].float().mean(1).cpu()
