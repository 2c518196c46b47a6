"""The prompt-only first stage (CLIP-ReID's stage 1) for models with learnable prompts.

Image features of every training item are computed once with the image side
frozen; then only the prompt parameters learn, for ``epochs`` passes over the
cached features, with CLIP-ReID's loss: supervised contrastive image->text plus
text->image over each batch, at CLIP's logit scale. The joint stage (the engine)
follows from the same config.

The training items are encoded as CLIP-ReID's first stage encodes them (its
``train_loader_stage1`` reads the training set with ``val_transforms``): with the data
manager's test transform and, for tracklets, the test-time frame choice, once each
(``prompt_stage_items``). Unreadable items follow ``data.on_bad_image`` as in the
joint stage: ``stop`` names the file; ``skip`` replaces the item by another of its
identity and modality, logs it, counts it and stops beyond ``data.max_bad_fraction``.

A model takes part by declaring ``prompt_stage_options`` (``epochs``, ``lr``,
``batch_size``, ``warmup_epochs``) and the methods ``prompt_parameters()``,
``encode_for_prompts(clips)``, ``prompt_text_features(labels)`` and
``prompt_logit_scale()``; for any other model, or ``epochs`` 0, nothing happens.
"""
import contextlib
import copy
import time

import torch

from ..data.bad_images import BadImageLog, ReplaceBadItems
from ..losses.supcon import supcon_loss
from ..optim.schedulers import WarmupCosineLR

__all__ = ['run_prompt_stage', 'prompt_stage_items', 'cache_image_features', 'train_prompts']


def _options(model):
    opts = getattr(model, 'prompt_stage_options', None) or {}
    return opts if int(opts.get('epochs', 0)) > 0 else None


def prompt_stage_items(datamanager, log=print):
    """(dataset, bad-item log or None): ``datamanager``'s training items read as the
    evaluation reads its pool (test transform; tracklets: the test-time frame choice,
    the same frames every time) under the run's ``data.on_bad_image``."""
    dataset = copy.copy(datamanager.train_set)
    transform = getattr(datamanager, 'transform_te', None)
    if transform is not None:
        dataset.transform = transform
    if getattr(dataset, 'mode', None) == 'train':
        dataset.mode = 'query'    # frames.py: the deterministic test-time clip
    if getattr(dataset, 'sample_method', None) == 'all':
        dataset.sample_method = 'evenly'   # clips of seq_len frames, batched
    on_bad, max_fraction = getattr(datamanager, 'bad_image_policy', ('stop', 0.0))
    if on_bad != 'skip':
        return dataset, None
    dataset = ReplaceBadItems(dataset)
    return dataset, BadImageLog(len(dataset.data), max_fraction, log)


@torch.no_grad()
def cache_image_features(model, dataset, batch_size, workers, device, autocast, bad_log=None):
    """(N, D) features and (N,) labels of every item of ``dataset`` (its own transform);
    ``bad_log``: a ``BadImageLog`` that sees every batch (items replaced under skip)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                         num_workers=workers)
    was_training = model.training
    model.eval()
    feats, labels = [], []
    try:
        for data in loader:
            if bad_log is not None:
                bad_log.note(data)
            with autocast():
                feats.append(model.encode_for_prompts(data['img'].to(device)).float())
            labels.append(data['pid'].to(device))
    finally:
        model.train(was_training)
    return torch.cat(feats), torch.cat(labels)


def train_prompts(model, feats, labels, epochs, lr, batch_size, warmup_epochs=0.0,
                  weight_decay=1e-4, seed=0, autocast=None, print_freq=0):
    """Learn only ``model.prompt_parameters()`` against cached image features.

    Every other parameter is frozen for the duration (its ``requires_grad`` is
    restored afterwards). Returns the mean loss of each epoch.
    """
    params = model.prompt_parameters()
    prompt_ids = {id(p) for p in params}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in prompt_ids]
    for p in frozen:
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    steps = max(1, len(feats) // batch_size)
    scheduler = WarmupCosineLR(optimizer, epochs * steps, round(warmup_epochs * steps))
    gen = torch.Generator().manual_seed(seed)
    scale = model.prompt_logit_scale()
    history = []
    try:
        for epoch in range(epochs):
            order = torch.randperm(len(feats), generator=gen).to(feats.device)
            total = 0.
            for s in range(steps):
                idx = order[s * batch_size:(s + 1) * batch_size]
                image, target = feats[idx], labels[idx]
                with (autocast or contextlib.nullcontext)():
                    text = model.prompt_text_features(target)
                loss = (supcon_loss(image, text, target, target, scale) +
                        supcon_loss(text, image, target, target, scale))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total = total + loss.detach()   # on the device: no host sync per step
            history.append(float(total) / steps)
            if print_freq and (epoch + 1) % print_freq == 0:
                print('prompt stage: epoch {}/{} loss {:.4f} lr {:.2e}'.format(
                    epoch + 1, epochs, history[-1], optimizer.param_groups[0]['lr']))
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return history


def run_prompt_stage(model, datamanager, device, autocast, workers=0, seed=0, print_freq=10):
    """Stage 1 for ``model`` on ``datamanager``'s training set if the model asks for it;
    returns the per-epoch losses, or None when there is no such stage."""
    opts = _options(model)
    if opts is None:
        return None
    start = time.time()
    dataset, bad_log = prompt_stage_items(datamanager)
    feats, labels = cache_image_features(model, dataset, opts['batch_size'], workers, device,
                                         autocast, bad_log)
    if bad_log is not None:   # every rank encodes every item: no sum over the ranks
        print('=> Prompt stage: {} unreadable training item(s) replaced by another of the same '
              'identity and modality (data.on_bad_image skip)'.format(len(bad_log.bad)))
    print('=> Prompt stage: {} training items encoded in {:.1f}s; learning the prompts for '
          '{} epochs'.format(len(feats), time.time() - start, opts['epochs']))
    history = train_prompts(model, feats, labels, opts['epochs'], opts['lr'],
                            opts['batch_size'], opts.get('warmup_epochs', 0.0), seed=seed,
                            autocast=autocast, print_freq=print_freq)
    print('=> Prompt stage done in {:.1f}s (loss {:.4f} -> {:.4f})'.format(
        time.time() - start, history[0], history[-1]))
    return history
