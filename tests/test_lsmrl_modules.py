"""LSMRL's parts, each against an independent definition (open_clip itself, torch.roll,
plain frame-wise blocks, hand-built pairs)."""
import pytest
import torch

from vireid_plugin.models import build_model
from vireid_plugin.models.lsmrl.attention import CrossAttention
from vireid_plugin.models.lsmrl.clip_towers import create_clip, get_tokenizer
from vireid_plugin.models.lsmrl.cmi import CrossModalInteraction, pair_partners
from vireid_plugin.models.lsmrl.sd import SemanticDiffusion
from vireid_plugin.models.lsmrl.stfl import (TPS_SHIFTS, grouped_block_forward, stfl_layout,
                                             temporal_patch_shift, tps_block_forward)

TINY = 'lsmrl_clip_tiny'
OFF = dict(stfl=False, sd=False, cmi=False)


def tiny(num_classes=4, **kw):
    torch.manual_seed(0)
    return build_model(TINY, num_classes, pretrained=False, **kw)


def randomise(module):
    """Non-zero weights everywhere (the residual branches start at zero on purpose)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.2)
    return module


def test_image_encoder_without_stfl_sd_cmi_is_open_clip_encode_image():
    model = tiny(**OFF).train()
    reference = create_clip('LSMRL-tiny', (128, 64))
    reference.visual.load_state_dict(model.image_encoder.visual.state_dict())
    x = torch.randn(3, 4, 3, 128, 64)
    expected = reference.encode_image(x.flatten(0, 1)).view(3, 4, -1).mean(1)
    out = model(x, named_outputs=True)
    torch.testing.assert_close(out['features'][1], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out['image_proj'], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(model.encode_for_prompts(x), expected, atol=1e-5, rtol=1e-4)


def test_tps_moves_each_cell_position_as_torch_roll_and_shift_back_inverts_it():
    t, grid, d = 6, (6, 3), 5
    x = torch.randn(2 * t, 1 + 18, d)
    y = temporal_patch_shift(x, t, grid)
    patches = x[:, 1:].reshape(2, t, 6, 3, d)
    out = y[:, 1:].reshape(2, t, 6, 3, d)
    for (r, c), s in TPS_SHIFTS.items():
        torch.testing.assert_close(out[:, :, r::3, c::3],
                                   torch.roll(patches[:, :, r::3, c::3], shifts=s, dims=1),
                                   rtol=0, atol=0)
    assert torch.equal(y[:, 0], x[:, 0])                     # CLS untouched
    assert not torch.equal(y, x)
    assert torch.equal(temporal_patch_shift(y, t, grid, reverse=True), x)
    assert torch.equal(temporal_patch_shift(x, 1, grid), x)  # T = 1: identity


def test_tps_block_is_the_plain_block_for_one_frame():
    block = create_clip('LSMRL-tiny', (128, 64)).visual.transformer.resblocks[0]
    x = torch.randn(3, 33, 96)
    torch.testing.assert_close(tps_block_forward(block, x, 1, (8, 4)), block(x))


def test_grouped_attention_with_group_size_one_is_framewise_and_groups_stay_apart():
    block = create_clip('LSMRL-tiny', (128, 64)).visual.transformer.resblocks[1].eval()
    t, length = 4, 33
    x = torch.randn(2 * t, length, 96)
    torch.testing.assert_close(grouped_block_forward(block, x, t, 1), block(x))
    # group size 2: frame 0 sees frame 1 (same group), never frame 2 (next group)
    base = grouped_block_forward(block, x, t, 2)
    x1, x2 = x.clone(), x.clone()
    x1[1] += 1.0
    x2[2] += 1.0
    assert not torch.allclose(grouped_block_forward(block, x1, t, 2)[0], base[0])
    torch.testing.assert_close(grouped_block_forward(block, x2, t, 2)[0], base[0])
    # a group is the block run on the concatenated frames
    pair = block(torch.cat([x[0], x[1]])[None])[0]
    torch.testing.assert_close(base[:2].reshape(-1, 96), pair, atol=1e-5, rtol=1e-4)
    # T = 5 with groups of 2: the last frame is a group of its own
    x5 = torch.randn(5, length, 96)
    torch.testing.assert_close(grouped_block_forward(block, x5, 5, 2)[4], block(x5[4:])[0])


def test_stfl_layout_and_zero_new_parameters():
    assert stfl_layout(12, 2, 2) == ['basic'] * 8 + ['grouped'] * 2 + ['tps'] * 2
    with pytest.raises(ValueError, match='do not fit'):
        stfl_layout(4, 3, 2)
    on = tiny(stfl=True, stfl_grouped_blocks=2, stfl_tps_blocks=2)
    off = tiny(stfl=False)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(on.stfl) == 0
    assert count(on) == count(off)
    assert count(on.image_encoder) == count(create_clip('LSMRL-tiny', (128, 64)).visual)


def test_stfl_makes_frames_of_a_clip_interact():
    model = tiny(sd=False, cmi=False).eval()
    x = torch.randn(1, 4, 3, 128, 64)
    y = x.clone()
    y[0, 3] = torch.randn(3, 128, 64)
    framewise = tiny(**OFF).eval()
    framewise.load_state_dict(model.state_dict())
    # with STFL, changing frame 3 changes frame 0's feature (through TPS); without, not
    f = lambda m, v: m.image_encoder.pool(m.stfl(m.image_encoder.blocks,  # noqa: E731
                                                 m.image_encoder.embed(v.flatten(0, 1)), 4))[0]
    with torch.no_grad():
        assert not torch.allclose(f(model, x)[0], f(model, y)[0])
        torch.testing.assert_close(f(framewise, x)[0], f(framewise, y)[0])


def test_sd_with_a_zero_bank_is_the_identity():
    sd = randomise(SemanticDiffusion(dim=16, text_dim=8, num_heads=4))
    tokens = torch.randn(6, 5, 16)
    assert torch.equal(sd(tokens, torch.zeros(1, 10, 8)), tokens)
    assert not torch.allclose(sd(tokens, torch.randn(1, 10, 8)), tokens)


def test_pair_partners_pairs_kth_visible_with_kth_infrared_of_the_same_id():
    pid = torch.tensor([5, 5, 5, 5, 7, 7, 9, 9, 9])
    mod = torch.tensor([0, 0, 1, 1, 0, 0, 1, 0, 0])
    # id 7 has no infrared: itself; id 9: one infrared shared by its two visibles
    assert pair_partners(pid, mod).tolist() == [2, 3, 0, 1, 4, 5, 7, 6, 6]
    # interleaved: visibles 0, 2, 3 (k = 0, 1, 2), infrareds 1, 4 (k = 0, 1); a visible
    # takes infrared k mod 2 (1, 4, 1), an infrared visible k mod 3 (0, 2)
    mixed = pair_partners(torch.tensor([1, 1, 1, 1, 1]), torch.tensor([0, 1, 0, 0, 1]))
    assert mixed.tolist() == [1, 0, 4, 1, 2]


@pytest.mark.parametrize('attention', ['cross', 'joint'])
def test_cmi_mixes_only_tokens_of_paired_sequences(attention):
    cmi = randomise(CrossModalInteraction(dim=16, num_heads=4, attention=attention))
    partner = pair_partners(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 0, 1]))
    tokens = torch.randn(4, 6, 16)
    base = cmi(tokens, partner)
    moved = tokens.clone()
    moved[2] += torch.randn(6, 16)          # sequence 2 (id 1, visible)
    out = cmi(moved, partner)
    assert torch.equal(out[:2], base[:2])   # id 0's pair does not see it
    assert not torch.allclose(out[3], base[3])  # its partner does


def test_cmi_weights_are_shared_by_both_directions():
    cmi = randomise(CrossModalInteraction(dim=8, num_heads=2))
    v, i = torch.randn(1, 3, 8), torch.randn(1, 3, 8)
    out = cmi(torch.cat([v, i]), torch.tensor([1, 0]))
    # infrared -> visible is the same module called with the roles swapped
    torch.testing.assert_close(out[1:], cmi(torch.cat([i, v]), torch.tensor([1, 0]))[:1])


def test_cross_attention_is_softmax_attention():
    attn = randomise(CrossAttention(dim=8, num_heads=1, bias=False))
    x, ctx = torch.randn(2, 3, 8), torch.randn(2, 4, 8)
    q, k, v = attn.q(x), attn.k(ctx), attn.v(ctx)
    weights = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, dim=-1)
    torch.testing.assert_close(attn(x, ctx), attn.out(weights @ v), atol=1e-5, rtol=1e-4)


def test_prompt_features_are_open_clip_encode_text_of_the_template():
    """With the context vectors set to the embedding of the word "X", the learned prompt
    is the template itself, and the cut-after-EOT text tower must equal encode_text."""
    model = tiny(num_classes=2)
    reference = create_clip('LSMRL-tiny', (128, 64))
    tokenizer = get_tokenizer('LSMRL-tiny')
    state = {k: v for k, v in reference.state_dict().items() if not k.startswith('visual.')}
    own = {'text_encoder.' + k: v for k, v in state.items() if k != 'attn_mask'}
    model.load_state_dict(own, strict=False)
    x_embedding = reference.token_embedding(tokenizer(['X'])[:, 1])[0]
    learner = model.prompt_learner
    learner.prefix.copy_(reference.token_embedding(tokenizer([learner.template]))[:, :5])
    learner.suffix.copy_(reference.token_embedding(
        tokenizer([learner.template]))[:, 9:learner.eot + 1])
    with torch.no_grad():
        learner.ctx.copy_(x_embedding.expand_as(learner.ctx))
        expected = reference.encode_text(tokenizer([learner.template]))
        got = model.prompt_text_features(torch.tensor([0, 1]))
    torch.testing.assert_close(got, expected.expand(2, -1), atol=1e-5, rtol=1e-4)


def test_label_injection_sd_uses_only_the_generic_prompt_at_test():
    x = torch.randn(2, 2, 3, 128, 64)
    for mode, depends_on_bank in (('label', False), ('bank', True)):
        model = tiny(sd=True, sd_mode=mode, cmi=False)
        randomise(model.sd)
        model.eval()
        with torch.no_grad():
            before = model(x)
            model.prompt_learner.ctx.add_(1.0)
            after = model(x)
        assert torch.allclose(before, after) != depends_on_bank, mode
    model.train()
    out = model(x, modality=torch.tensor([0, 1]), pid=torch.tensor([0, 1]), named_outputs=True)
    assert out['text_features'].shape == (4, 64)


def test_train_outputs_and_eval_feature():
    model = tiny(cmi_test=True)
    out = model(torch.randn(4, 2, 3, 128, 64), modality=torch.tensor([0, 1, 0, 1]),
                pid=torch.tensor([0, 0, 1, 1]), named_outputs=True)
    assert [f.shape[1] for f in out['features']] == [96, 64]
    assert out['cmi_features'].shape == (4, 96) and out['cmi_logits'].shape == (4, 4)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(3, 2, 3, 128, 64)).shape == (3, 96 + 64 + 96)
