"""MIP model: backbone equivalence, prompt selection, IPG, released compatibility, JPM,
the authors' checkpoint, parameter count, parameter groups."""
import pytest
import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.losses import build_loss
from vireid_plugin.models import build_model, load_weights
from vireid_plugin.models.jpm import jigsaw_shuffle
from vireid_plugin.models.mip import MIPReID
from vireid_plugin.optim import build_optimizer

TINY = dict(embed_dim=32, depth=4, num_heads=4, img_size=(64, 32), drop_path_rate=0.0)


def tiny(**kwargs):
    torch.manual_seed(0)
    options = dict(TINY, num_cameras=3, num_tokens=4, num_instance_tokens=4, stride_size=16)
    options.update(kwargs)
    return MIPReID(5, **options)


def images(b=4, h=64, w=32, seed=1):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


MOD = torch.tensor([0, 1, 0, 1])
CAM = torch.tensor([0, 2, 1, 0])


def test_plain_backbone_equals_timm_vit_forward():
    """Prompts, IPG, SIE and JPM off at stride 16: timm's ViT forward on the same weights."""
    model = tiny(modality_prompts=False, instance_prompts='none', jpm=False,
                 num_cameras=0).eval()
    torch.manual_seed(7)
    ref = VisionTransformer(img_size=(64, 32), patch_size=16, embed_dim=32, depth=4,
                            num_heads=4, qkv_bias=True, num_classes=0).eval()
    model.backbone.load_state_dict(ref.state_dict())
    x = images()
    with torch.no_grad():
        expected = ref.forward_features(x)[:, 0]
        feats, prompts = model.forward_features(x)
        out = model(x)
    assert prompts == []
    torch.testing.assert_close(feats[0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, F.normalize(expected, dim=1), rtol=1e-5, atol=1e-5)


def test_prompts_are_chosen_by_modality():
    model = tiny(instance_prompts='none').eval()
    x = images()
    same = torch.zeros(4, dtype=torch.long)
    with torch.no_grad():
        visible = model(x, modality=same, camid=CAM)
        infrared = model(x, modality=same + 1, camid=CAM)
        model.prompts.table[1].normal_()          # the infrared table only
        visible_again = model(x, modality=same, camid=CAM)
        infrared_again = model(x, modality=same + 1, camid=CAM)
    assert not torch.allclose(visible, infrared, atol=1e-4)
    torch.testing.assert_close(visible_again, visible)      # other modality's table unused
    assert not torch.allclose(infrared_again, infrared, atol=1e-4)


def test_naive_prompts_ignore_modality():
    model = tiny(instance_prompts='none', naive_prompts=True).eval()
    x = images()
    with torch.no_grad():
        a = model(x, modality=torch.zeros(4, dtype=torch.long), camid=CAM)
        b = model(x, modality=torch.ones(4, dtype=torch.long), camid=CAM)
    torch.testing.assert_close(a, b)


def test_prompted_model_requires_modality():
    with pytest.raises(ValueError, match='modality'):
        tiny().eval()(images())


def test_learnable_queries_give_distinct_prompts_released_ones_are_identical():
    x = images()
    with torch.no_grad():
        _, prompts = tiny().eval().forward_features(x, MOD, CAM)
        _, released = tiny(released_compat=True).eval().forward_features(x, MOD, CAM)
    p = prompts[0]                                # (B, T, D) of layer 0
    assert not torch.allclose(p[:, 0], p[:, 1], atol=1e-4)       # across tokens
    assert not torch.allclose(p[0], p[1], atol=1e-4)             # across images
    for layer in released:                        # zero queries: one vector, T copies
        torch.testing.assert_close(layer, layer[:, :1].expand_as(layer), rtol=0, atol=1e-6)
    assert not torch.allclose(released[0][0], released[0][1], atol=1e-4)  # still per image


def test_released_compat_never_runs_the_second_to_last_block():
    x = images()
    for compat, changes in ((True, False), (False, True)):
        model = tiny(released_compat=compat).eval()
        depth = len(model.backbone.blocks)
        assert model.num_blocks == (depth - 2 if compat else depth - 1)
        assert model.num_instance_prompt_layers == model.num_blocks
        with torch.no_grad():
            before = model(x, modality=MOD, camid=CAM)
            model.backbone.blocks[depth - 2].mlp.fc2.weight.normal_()
            after = model(x, modality=MOD, camid=CAM)
        assert (not torch.allclose(before, after, atol=1e-4)) == changes
    # without prompts the released code runs blocks[:-1] like TransReID
    assert tiny(released_compat=True, modality_prompts=False,
                instance_prompts='none').num_blocks == 3


def test_fusion_prompts_shapes_and_query_source():
    model = tiny(instance_prompts='fusion', instance_bank_size=8).eval()
    with torch.no_grad():
        _, prompts = model.forward_features(images(), MOD, CAM)
    assert len(prompts) == 3 and prompts[0].shape == (4, 4, 32)
    # layer 0 is driven by the mean patch embedding: the same image twice, same prompts
    x = images(2).repeat(2, 1, 1, 1)
    with torch.no_grad():
        _, prompts = model.forward_features(x, MOD, torch.tensor([0, 2, 0, 2]))
    torch.testing.assert_close(prompts[0][0], prompts[0][2])


def test_jigsaw_shuffle_follows_transreid_by_hand():
    # patches labelled 0..9; TransReID shift 5 (counted with CLS) rotates by 4:
    # [4..9, 0..3]; 2 groups of 5 interleaved -> 4 9 5 0 6 1 7 2 8 3
    x = torch.arange(10.).view(1, 10, 1)
    assert jigsaw_shuffle(x, 5, 2).flatten().tolist() == [4, 9, 5, 0, 6, 1, 7, 2, 8, 3]
    # odd count: the second-to-last token is repeated once: [4..8, 0..3, 2] -> interleave
    x = torch.arange(9.).view(1, 9, 1)
    assert jigsaw_shuffle(x, 5, 2).flatten().tolist() == [4, 0, 5, 1, 6, 2, 7, 3, 8, 2]


def test_jpm_parts_are_the_head_on_cls_plus_each_group():
    model = tiny().eval()
    tokens = torch.randn(2, 1 + 8, 32)         # CLS + 4x2 patches (64x32 at stride 16)
    with torch.no_grad():
        parts = model.jpm_branch(tokens)
        order = jigsaw_shuffle(tokens[:, 1:], 5, 2)
        head = model.jpm_branch
        for k in range(4):   # 8 // 4 = 2 tokens per part
            seq = torch.cat([tokens[:, :1], order[:, 2 * k:2 * k + 2]], 1)
            torch.testing.assert_close(parts[k], head.norm(head.block(seq))[:, 0],
                                       rtol=1e-5, atol=1e-5)


def test_train_outputs_and_eval_feature():
    model = tiny()
    out = model.train()(images(), modality=MOD, camid=CAM, named_outputs=True)
    assert len(out['features']) == len(out['logits']) == 5
    assert out['logits'][0].shape == (4, 5) and out['features'][3].shape == (4, 32)
    assert out['head_weights'] == (0.5, 0.125, 0.125, 0.125, 0.125)
    assert len(out['instance_prompts']) == 3
    model.eval()
    with torch.no_grad():
        feat = model(images(), modality=MOD, camid=CAM)
        feats, _ = model.forward_features(images(), MOD, CAM)
    assert feat.shape == (4, 5 * 32)
    expected = F.normalize(torch.cat([feats[0]] + [f / 4 for f in feats[1:]], 1), dim=1)
    torch.testing.assert_close(feat, expected)
    torch.testing.assert_close(feat.norm(dim=1), torch.ones(4))


def test_camera_embedding_changes_the_feature():
    model = tiny().eval()
    with torch.no_grad():
        a = model(images(), modality=MOD, camid=CAM)
        b = model(images(), modality=MOD, camid=(CAM + 1) % 3)
    assert not torch.allclose(a, b, atol=1e-4)


def test_gradients_reach_prompts_generator_iael_head_and_backbone():
    model = tiny().train()
    criterion = build_loss(['id', 'triplet', 'iael', 'msel'], [1.0, 1.0, 0.5, 0.5],
                           {'msel': {'start_epoch': 0}}, num_classes=5, model=model)
    pid = torch.tensor([0, 0, 1, 1])
    batch = {'pid': pid, 'camid': CAM, 'modality': MOD}
    total, parts = criterion(model(images(), modality=MOD, camid=CAM, named_outputs=True),
                             batch)
    total.backward()
    for name, param in [('prompts.table', model.prompts.table),
                        ('instance.queries', model.instance.queries),
                        ('instance.block', model.instance.block.attn.qkv.weight),
                        ('backbone.blocks.0', model.backbone.blocks[0].attn.qkv.weight),
                        ('backbone.sie_embed', model.backbone.sie_embed),
                        ('jpm_branch', model.jpm_branch.block.mlp.fc1.weight),
                        ('iael.classifiers.0', criterion.terms['iael'].classifiers[0].weight),
                        ('iael.bns.2', criterion.terms['iael'].bns[2].weight)]:
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert set(parts) == {'id', 'triplet', 'iael', 'msel'}


def test_group_learning_rates_reach_the_optimizer():
    model = tiny()
    criterion = build_loss(['id', 'iael'], [1.0, 0.5], num_classes=5, model=model)
    opt = build_optimizer([model, criterion], optim='sgd', lr=0.01, weight_decay=1e-4,
                          bias_lr_factor=2.0, exempt_from_decay=False)
    lr = {id(p): g['lr'] for g in opt.param_groups for p in g['params']}
    assert lr[id(model.prompts.table)] == pytest.approx(0.05)
    assert lr[id(model.instance.block.mlp.fc1.weight)] == pytest.approx(0.15)
    assert lr[id(model.instance.block.mlp.fc1.bias)] == pytest.approx(0.15)
    assert lr[id(model.prompts.proj.weight)] == pytest.approx(0.01)   # base, as released
    assert lr[id(model.backbone.blocks[0].attn.qkv.bias)] == pytest.approx(0.02)
    assert lr[id(criterion.terms['iael'].classifiers[0].weight)] == pytest.approx(0.01)
    fusion = tiny(instance_prompts='fusion', instance_bank_size=8)
    opt = build_optimizer([fusion], optim='adamw', lr=1e-3, weight_decay=0.05)
    by_param = {id(p): g for g in opt.param_groups for p in g['params']}
    assert by_param[id(fusion.instance.bank)]['lr'] == pytest.approx(5e-3)
    assert by_param[id(fusion.instance.bank)]['weight_decay'] == 0.0
    assert isinstance(opt, torch.optim.AdamW)


# ---------------------------------------------------------------- full size

D, DEPTH, T, CLASSES, CAMS = 768, 12, 16, 395, 6
GRID = 21 * 10   # 256x128 at stride 12: ((256-16)//12+1) x ((128-16)//12+1)


def block_shapes(prefix, d=D):
    mlp = 4 * d
    return {prefix + 'norm1.weight': (d,), prefix + 'norm1.bias': (d,),
            prefix + 'attn.qkv.weight': (3 * d, d), prefix + 'attn.qkv.bias': (3 * d,),
            prefix + 'attn.proj.weight': (d, d), prefix + 'attn.proj.bias': (d,),
            prefix + 'norm2.weight': (d,), prefix + 'norm2.bias': (d,),
            prefix + 'mlp.fc1.weight': (mlp, d), prefix + 'mlp.fc1.bias': (mlp,),
            prefix + 'mlp.fc2.weight': (d, mlp), prefix + 'mlp.fc2.bias': (d,)}


def released_state_dict(cams=CAMS, D=D, DEPTH=DEPTH, T=T, GRID=GRID, CLASSES=CLASSES):
    """Keys and shapes of the released SYSU model, from the architecture of their
    make_model.py / vit_pytorch.py (train.sh: prompts 16, generation IPG, IPIL off);
    random values. The keyword sizes give the same layout at a tiny size."""
    shapes = {'base.cls_token': (1, 1, D), 'base.pos_embed': (1, 1 + GRID, D),
              'base.sie_embed': (cams, 1, D), 'base.patch_embed.proj.weight': (D, 3, 16, 16),
              'base.patch_embed.proj.bias': (D,), 'base.norm.weight': (D,),
              'base.norm.bias': (D,), 'base.fc.weight': (1000, D), 'base.fc.bias': (1000,),
              'base.prompt_embeddings': (2, T, D), 'base.deep_prompt_embeddings': (2, DEPTH, T, D),
              'base.prompt_proj.weight': (D, D), 'base.prompt_proj.bias': (D,),
              'base.prompt_embed': (1, T, D), 'zero_token': (1, 1, D)}
    for i in range(DEPTH):
        shapes.update(block_shapes('base.blocks.{}.'.format(i), D))
    shapes.update(block_shapes('base.instance_prompt_generator.', D))
    for i in range(DEPTH - 1):
        shapes.update({'base.prompt_adapters.{}.fc1.weight'.format(i): (64, D),
                       'base.prompt_adapters.{}.fc1.bias'.format(i): (64,),
                       'base.prompt_adapters.{}.fc2.weight'.format(i): (D, 64),
                       'base.prompt_adapters.{}.fc2.bias'.format(i): (D,)})
    for head in ('b1', 'b2'):
        shapes.update(block_shapes(head + '.0.', D))
        shapes.update({head + '.1.weight': (D,), head + '.1.bias': (D,)})
    for suffix in ('', '_1', '_2', '_3', '_4'):
        shapes['classifier{}.weight'.format(suffix)] = (CLASSES, D)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes['bottleneck{}.{}'.format(suffix, name)] = (D,)
        shapes['bottleneck{}.num_batches_tracked'.format(suffix)] = ()
    for i in range(DEPTH - 2):
        shapes['classifiers_ins_prompts.{}.weight'.format(i)] = (CLASSES, D)
        for name in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes['bottlenecks_ins_prompts.{}.{}'.format(i, name)] = (D,)
        shapes['bottlenecks_ins_prompts.{}.num_batches_tracked'.format(i)] = ()
    gen = torch.Generator().manual_seed(0)
    return {k: (torch.randint(0, 100, s, generator=gen) if k.endswith('num_batches_tracked')
                else torch.randn(s, generator=gen)) for k, s in shapes.items()}


@pytest.fixture(scope='module')
def released(tmp_path_factory):
    state = released_state_dict()
    path = tmp_path_factory.mktemp('mip') / 'MIP_sysu.pth'
    torch.save(state, path)      # a bare state dict, as their processor saves it
    return state, str(path)


def test_parameter_count_equals_the_arithmetic():
    model = build_model('mip_vit_base_patch16', CLASSES, num_cameras=CAMS, pretrained=False)
    block = 12 * D * D + 13 * D          # qkv 3D^2+3D, proj D^2+D, fc1/fc2 8D^2+5D, 2 norms 4D
    expected = (3 * 16 * 16 * D + D      # patch embedding (conv 16x16, stride 12)
                + D + (1 + GRID) * D + CAMS * D   # CLS, position, SIE
                + DEPTH * block + 2 * D  # blocks and final norm
                + 2 * (block + 2 * D)    # global and JPM heads: last block + norm
                + 2 * DEPTH * T * D + D * D + D   # MPL table and shared projection
                + block + T * D          # IPG generator block and its queries
                + 5 * (2 * D + CLASSES * D))      # 5 BNNecks (weight, bias) + classifiers
    assert sum(p.numel() for p in model.parameters()) == expected == 109_502_976
    assert model.feature_dim == 5 * D


def test_released_checkpoint_loads_with_every_used_key_mapped(released):
    state, path = released
    model = build_model('mip_vit_base_patch16', CLASSES, num_cameras=CAMS, pretrained=False,
                        released_compat=True)
    report = load_weights(model, path)            # strict: every model tensor covered
    assert not report.missing and not report.unexpected and not report.mismatched
    assert model.num_instance_prompt_layers == 10  # blocks 0..9: their IAEL's 10 layers
    assert 'wurqjackey/MIP' in report.source
    left = report.left_out
    assert 'base.fc.weight' in left and 'base.prompt_adapters.3.fc1.weight' in left
    assert 'classifiers_ins_prompts.9.weight' in left and 'zero_token' in left
    assert 'base.prompt_embed' in left            # zero queries in the released forward
    own = model.state_dict()
    # their modality 0 is infrared, ours is visible: tables flipped; layer i at index i
    torch.testing.assert_close(own['prompts.table'][0, 0], state['base.prompt_embeddings'][1])
    torch.testing.assert_close(own['prompts.table'][1, 0], state['base.prompt_embeddings'][0])
    torch.testing.assert_close(own['prompts.table'][0, 5],
                               state['base.deep_prompt_embeddings'][1, 4])
    torch.testing.assert_close(own['global_branch.block.attn.qkv.weight'],
                               state['b1.0.attn.qkv.weight'])
    torch.testing.assert_close(own['jpm_branch.norm.bias'], state['b2.1.bias'])
    torch.testing.assert_close(own['necks.3.classifier.weight'], state['classifier_3.weight'])
    torch.testing.assert_close(own['necks.0.bn.running_var'], state['bottleneck.running_var'])
    torch.testing.assert_close(own['instance.block.mlp.fc2.weight'],
                               state['base.instance_prompt_generator.mlp.fc2.weight'])
    torch.testing.assert_close(own['backbone.sie_embed'], state['base.sie_embed'])
    summary = report.summary()
    assert 'left out' in summary and 'ImageNet classifier' in summary


def test_released_checkpoint_into_the_default_model_maps_the_queries(released):
    state, path = released
    model = build_model('mip_vit_base_patch16', CLASSES, num_cameras=CAMS, pretrained=False)
    from vireid_plugin.checkpoint_io import CheckpointError
    with pytest.raises(CheckpointError, match='mip.released_compat True'):
        load_weights(model, path)                 # the guard (below); the override:
    model.force_released_weights = True
    report = load_weights(model, path)
    assert 'base.prompt_embed' not in report.left_out
    torch.testing.assert_close(model.instance.queries.detach(), state['base.prompt_embed'])


TINY_LAYOUT = dict(cams=3, D=32, DEPTH=4, T=4, GRID=(64 // 16) * (32 // 16), CLASSES=5)


def test_released_checkpoint_into_another_forward_is_refused_unless_forced(tmp_path):
    """The authors' key layout (random values, saved here) into a prompted model whose
    forward is not theirs: one message naming the key and the config; nothing loaded."""
    from vireid_plugin.checkpoint_io import CheckpointError
    state = released_state_dict(**TINY_LAYOUT)
    path = str(tmp_path / 'their_tiny.pth')
    torch.save(state, path)
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_weights(model, path)
    msg = str(err.value)
    assert 'their_tiny.pth' in msg and 'mip.released_compat True' in msg
    assert 'configs/mip_sysu_released.yaml' in msg and 'mip.force_released_weights' in msg
    assert len(msg.splitlines()) == 1
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    for kwargs in (dict(instance_queries='zeros'), dict(instance_prompts='fusion'),
                   dict(instance_prompts='none')):   # still block 10 run: refused
        with pytest.raises(CheckpointError, match='mip.released_compat True'):
            load_weights(tiny(**kwargs), path)
    # the override loads it (strict: every tensor mapped), queries from their prompt_embed
    forced = tiny(force_released_weights=True)
    load_weights(forced, path)
    torch.testing.assert_close(forced.instance.queries.detach(), state['base.prompt_embed'])
    # the released-compatible model loads it as before; a model without prompts runs
    # their forward too (TransReID's blocks 0..depth-2), so it is not refused
    compat = tiny(released_compat=True)
    report = load_weights(compat, path)
    assert not report.missing and not report.unexpected and 'base.prompt_embed' in report.left_out
    torch.testing.assert_close(compat.necks[2].classifier.weight, state['classifier_2.weight'])
    plain = tiny(modality_prompts=False, instance_prompts='none')
    assert plain.released_forward and not tiny().released_forward
    load_weights(plain, path)
    # the plugin's own checkpoints are not affected
    own = tmp_path / 'own.pth'
    torch.save({'state_dict': tiny().state_dict()}, own)
    load_weights(tiny(), str(own))


def test_regdb_sie_rows_are_swapped():
    from vireid_plugin.models.mip import released_checkpoint_filter
    model = tiny(num_cameras=2, force_released_weights=True)
    sie = torch.tensor([[[1.]], [[2.]]]).expand(2, 1, 32)   # theirs: thermal 0, visible 1
    out, _, _ = released_checkpoint_filter({'base.sie_embed': sie}, model)
    assert out['backbone.sie_embed'][0, 0, 0] == 2. and out['backbone.sie_embed'][1, 0, 0] == 1.


def test_released_fusion_heads_are_stacked_per_layer():
    from vireid_plugin.models.mip import released_checkpoint_filter
    model = tiny(instance_prompts='fusion', instance_bank_size=8,   # 4 tokens, 8 entries
                 force_released_weights=True)
    gen = torch.Generator().manual_seed(2)
    theirs = {'base.instance_prompt_embeddings': torch.randn(8, 32, generator=gen),
              'base.deep_instance_prompt_embeddings': torch.randn(8, 4, 32, generator=gen)}
    for j in range(4):
        theirs['base.instance_prompt_fusion_head.classifier_dict.step:{}.weight'.format(j)] = \
            torch.full((8, 32), float(j))
        for i in range(4):
            theirs['base.deep_instance_prompt_fusion_heads.{}.classifier_dict.step:{}.weight'
                   .format(i, j)] = torch.full((8, 32), 10. * i + j)
    out, left, _ = released_checkpoint_filter(theirs, model)
    assert out['instance.heads.0.weight'].shape == (32, 32)
    assert out['instance.heads.0.weight'][8 * 3, 0] == 3.        # head 3 of layer 0
    assert out['instance.heads.2.weight'][8 * 1, 0] == 11.       # layer 2 <- their deep[1]
    torch.testing.assert_close(out['instance.bank'][0], theirs['base.instance_prompt_embeddings'])
    torch.testing.assert_close(out['instance.bank'][3],
                               theirs['base.deep_instance_prompt_embeddings'][:, 2])
    assert any(k.startswith('base.deep_instance_prompt_fusion_heads.3.') for k in left)


def test_checkpoint_for_another_class_count_is_one_message(released, tmp_path):
    model = tiny()
    path = tmp_path / 'other.pth'
    other = tiny()
    other.necks[0].classifier = torch.nn.Linear(32, 9, bias=False)
    torch.save({'state_dict': other.state_dict()}, path)
    from vireid_plugin.checkpoint_io import CheckpointError
    with pytest.raises(CheckpointError, match=r'necks\.0\.classifier\.weight \(file \(9, 32\), '
                                              r'model \(5, 32\)\)'):
        load_weights(model, str(path))
    report = load_weights(model, str(path), strict=False)
    assert [m[0] for m in report.mismatched] == ['necks.0.classifier.weight']


def test_mip_key_on_a_non_mip_model_is_a_config_error():
    with pytest.raises(ConfigError, match=r"'mip.num_tokens' is set, but model 'vit_base_reid'"):
        load_config('', ['mip.num_tokens', '8'])
    cfg = load_config('', ['model.name', 'mip_vit_tiny', 'mip.num_tokens', '8'])
    assert cfg.mip.num_tokens == 8
