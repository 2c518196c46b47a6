"""The MIP authors' released checkpoints (GitHub wurqjackey/MIP) onto ``MIPReID``.

A filter function in timm's style: ``released_checkpoint_filter(state_dict, model)``
maps their key names (``base.*`` for the TransReID backbone with the prompt code,
``b1``/``b2`` heads, ``classifier``, ``classifier_1..4``, ``bottleneck``,
``bottleneck_1..4``, ...; read from their ``model/make_model.py`` and
``model/backbones/vit_pytorch.py``) onto the plugin's, and names every tensor it
leaves out and why. Conventions that differ:

- modality index: theirs 0 = infrared, 1 = visible; ours 0 = visible, so the
  prompt tables are flipped along the modality axis;
- prompt tables: theirs ``prompt_embeddings`` (layer 0) + ``deep_prompt_embeddings``
  (layer i at index i-1, 12 slots of which the last is never used); ours one
  (2, depth, T, D) table with layer i at index i;
- RegDB camera ids: their RegDB loader numbers thermal 0 and visible 1, ours
  visible 0 and thermal 1, so a 2-row SIE table is swapped (SYSU's 6 cameras are
  numbered alike: camK -> K-1 in both);
- the fusion heads: their 16 ``Linear(D, 64)`` per layer are stacked into one
  ``Linear(D, 16 * 64)``.
A state dict without ``base.`` keys is returned unchanged (the plugin's own).

Guard: their state dict into a model whose forward is not theirs (a prompted model
without ``mip.released_compat True``: learnable generator queries, block 10 run) is
refused with one message; their never-trained ``base.prompt_embed`` would become
trained queries and a block their run never fine-tuned would be executed, so the
scores would be quietly wrong. ``mip.force_released_weights True`` loads it anyway.
"""
import torch

__all__ = ['released_checkpoint_filter', 'SOURCE', 'GUARD_MESSAGE']

SOURCE = "MIP authors' released checkpoint (wurqjackey/MIP)"
GUARD_MESSAGE = (
    "it is an MIP authors' checkpoint (wurqjackey/MIP key names), and this model's forward "
    "is not theirs (learnable generator queries, block 10 run), so it would score quietly "
    "wrong: evaluate it with mip.released_compat True, as configs/mip_sysu_released.yaml "
    "(configs/mip_regdb_released.yaml for RegDB) sets, or set mip.force_released_weights "
    "True to load it into this model anyway")

_BACKBONE = ('cls_token', 'pos_embed', 'patch_embed.', 'blocks.', 'norm.')
_LEFT_OUT = (
    ('base.fc.', 'ImageNet classifier of the backbone, unused by ReID'),
    ('base.prompt_adapters.', 'prompt adapters (MODEL.ADAPTER), off in the released recipe'),
    ('base.modal_embed', 'modality embedding (MODEL.USE_ME), off in the released recipe'),
    ('classifiers_ins_prompts.', 'IAEL classifiers: training-only, kept by the iael loss term '
                                 '(the released recipe trained with MODEL.IPIL False)'),
    ('bottlenecks_ins_prompts.', 'IAEL BNs: training-only, kept by the iael loss term '
                                 '(the released recipe trained with MODEL.IPIL False)'),
    ('b3.', "IAEL's extra head block (IPIL_SIMPLE False variant), training-only"),
    ('zero_token', "IAEL's extra head token, training-only"),
    ('bottleneck_sub', 'modality-specific BNNecks (MODEL.SPECIFIC_BN), off in the released '
                       'recipe'),
)


def _head_key(key):
    """classifier[_k] / bottleneck[_k] -> necks.k.classifier / necks.k.bn."""
    for theirs, ours in (('classifier', 'classifier'), ('bottleneck', 'bn')):
        head, dot, rest = key.partition('.')
        if dot and (head == theirs or (head.startswith(theirs + '_')
                                       and head[len(theirs) + 1:].isdigit())):
            index = int(head[len(theirs) + 1:]) if head != theirs else 0
            return 'necks.{}.{}.{}'.format(index, ours, rest)
    return None


def released_checkpoint_filter(state_dict, model):
    """(state dict in the model's names, {left-out key: reason}, source description)."""
    if not any(k.startswith('base.') for k in state_dict):
        return state_dict, {}, ''
    if not getattr(model, 'released_forward', True) and \
            not getattr(model, 'force_released_weights', False):
        raise ValueError(GUARD_MESSAGE)
    out, left_out = {}, {}
    prompts = getattr(model, 'prompts', None)
    instance = getattr(model, 'instance', None)
    kind = type(instance).__name__ if instance is not None else None
    depth = len(model.backbone.blocks)
    fusion_heads = {}

    for key, value in state_dict.items():
        reason = next((why for prefix, why in _LEFT_OUT if key.startswith(prefix)), None)
        if reason:
            left_out[key] = reason
            continue
        name = key[len('base.'):] if key.startswith('base.') else None
        if name is not None and name.startswith(_BACKBONE):
            out['backbone.' + name] = value
        elif name == 'sie_embed':
            # a 2-camera table comes from their RegDB loader (thermal 0, visible 1)
            out['backbone.sie_embed'] = value.flip(0) if value.shape[0] == 2 else value
        elif name in ('prompt_embeddings', 'deep_prompt_embeddings'):
            if prompts is None:
                left_out[key] = 'modality prompts: off in this model (mip.modality_prompts)'
        elif name is not None and name.startswith('prompt_proj.'):
            if prompts is None:
                left_out[key] = 'modality prompts: off in this model (mip.modality_prompts)'
            else:
                out['prompts.proj.' + name[len('prompt_proj.'):]] = value
        elif name == 'prompt_embed':
            if kind == 'InstancePromptGenerator' and instance.queries is not None:
                out['instance.queries'] = value
            else:
                left_out[key] = ('generator queries (BUG_REFINE): unused by the released forward '
                                 '(zero queries) and by this model')
        elif name is not None and name.startswith('instance_prompt_generator.'):
            if kind == 'InstancePromptGenerator':
                out['instance.block.' + name[len('instance_prompt_generator.'):]] = value
            else:
                left_out[key] = 'generation-based IPG: not the variant of this model'
        elif name is not None and (name.startswith(('instance_prompt_', 'deep_instance_prompt_'))):
            if kind != 'InstancePromptFusion':
                left_out[key] = 'fusion-based IPG: not the variant of this model'
            elif name.startswith('instance_prompt_proj.'):
                out['instance.proj.' + name[len('instance_prompt_proj.'):]] = value
            else:
                fusion_heads[name] = value
        elif key.startswith(('b1.', 'b2.')):
            branch = 'global_branch' if key.startswith('b1.') else 'jpm_branch'
            index, rest = key[3:].split('.', 1)
            out['{}.{}.{}'.format(branch, 'block' if index == '0' else 'norm', rest)] = value
        elif _head_key(key):
            out[_head_key(key)] = value
        else:
            out[key] = value   # unknown: the strict load reports it

    if prompts is not None and 'base.prompt_embeddings' in state_dict:
        first = state_dict['base.prompt_embeddings']           # (2, T, D)
        deep = state_dict.get('base.deep_prompt_embeddings')   # (2, 12, T, D)
        layers = [first[:, None]] + ([deep[:, :depth - 1]] if deep is not None else [])
        out['prompts.table'] = torch.cat(layers, dim=1).flip(0)
        if deep is not None and deep.shape[1] >= depth:
            left_out['base.deep_prompt_embeddings[:, {}:]'.format(depth - 1)] = (
                'deep prompt slots the released forward never reaches')
    if kind == 'InstancePromptFusion':
        out.update(_fusion(fusion_heads, depth, left_out))
    return out, left_out, SOURCE


def _fusion(tables, depth, left_out):
    """Their fusion bank and per-layer Multi_Heads onto ``instance.bank`` / ``instance.heads``."""
    out = {}
    first, deep = tables.get('instance_prompt_embeddings'), \
        tables.get('deep_instance_prompt_embeddings')            # (S, D), (S, depth, D)
    if first is not None and deep is not None:
        out['instance.bank'] = torch.cat([first[None], deep.permute(1, 0, 2)[:depth - 1]], 0)

    def stacked(prefix):
        steps = sorted((int(k.rsplit('step:', 1)[1].split('.')[0]), v)
                       for k, v in tables.items() if k.startswith(prefix + 'classifier_dict.'))
        return torch.cat([v for _, v in steps], 0) if steps else None

    head0 = stacked('instance_prompt_fusion_head.')
    if head0 is not None:
        out['instance.heads.0.weight'] = head0
    for i in range(1, depth):
        head = stacked('deep_instance_prompt_fusion_heads.{}.'.format(i - 1))
        if head is not None:
            out['instance.heads.{}.weight'.format(i)] = head
    unused = [k for k in tables if k.startswith(
        'deep_instance_prompt_fusion_heads.{}.'.format(depth - 1))]
    for k in unused:
        left_out['base.' + k] = 'fusion head of a layer the released forward never reaches'
    return out
