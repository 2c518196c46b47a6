import math

import pytest
import torch

from vireid_plugin.losses import CompositeLoss, IDLoss, TripletLoss, build_loss
from vireid_plugin.registry import LOSSES

try:
    from torchreid.reid.losses import TripletLoss as ReidTriplet
except ImportError:  # upstream layout
    from torchreid.losses import TripletLoss as ReidTriplet


def _batch(pid):
    pid = torch.as_tensor(pid)
    return {'pid': pid, 'camid': torch.zeros_like(pid), 'modality': torch.zeros_like(pid)}


def _loop_triplet(x, pid, margin, soft):
    """Independent definition: one anchor at a time, plain tensor ops."""
    terms = []
    for a in range(len(pid)):
        d = ((x - x[a]) ** 2).sum(1).sqrt()
        pos = [d[j] for j in range(len(pid)) if j != a and pid[j] == pid[a]]
        neg = [d[j] for j in range(len(pid)) if pid[j] != pid[a]]
        if not pos or not neg:
            continue
        gap = max(pos) - min(neg)
        terms.append(torch.log1p(torch.exp(gap)) if soft else torch.clamp(gap + margin, min=0))
    return torch.stack(terms).mean()


# --- id -----------------------------------------------------------------------

LOGITS = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 3.0]])
PID = torch.tensor([0, 2])


def test_id_plain_ce_by_hand():
    # -log softmax at the target, averaged over the two samples
    expected = 0.
    for row, t in zip(LOGITS.tolist(), PID.tolist()):
        expected += -(row[t] - math.log(sum(math.exp(v) for v in row)))
    expected /= 2
    loss = IDLoss(label_smooth=0.)({'logits': LOGITS}, _batch(PID))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_id_label_smoothing_by_hand():
    eps, c = 0.1, 3
    expected = 0.
    for row, t in zip(LOGITS.tolist(), PID.tolist()):
        lse = math.log(sum(math.exp(v) for v in row))
        q = [(1 - eps) * (j == t) + eps / c for j in range(c)]
        expected += -sum(qj * (v - lse) for qj, v in zip(q, row))
    expected /= 2
    loss = IDLoss(label_smooth=eps)({'logits': LOGITS}, _batch(PID))
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert IDLoss().label_smooth == 0.1  # torchreid's default


def test_id_list_of_heads_is_mean():
    other = torch.tensor([[0.3, -0.2, 0.1], [1.0, 1.0, -2.0]])
    term = IDLoss(label_smooth=0.)
    b = _batch(PID)
    both = term({'logits': [LOGITS, other]}, b)
    single = (term({'logits': LOGITS}, b) + term({'logits': other}, b)) / 2
    assert both.item() == pytest.approx(single.item(), rel=1e-6)


def test_id_key_option_and_missing_key_message():
    term = IDLoss(key='aux_logits')
    assert torch.isfinite(term({'aux_logits': LOGITS}, _batch(PID)))
    with pytest.raises(KeyError) as exc:
        term({'logits': LOGITS, 'features': LOGITS}, _batch(PID))
    msg = str(exc.value)
    assert "'aux_logits'" in msg and 'IDLoss' in msg and "'features'" in msg


# --- triplet ------------------------------------------------------------------

@pytest.mark.parametrize('soft', [False, True])
def test_triplet_matches_anchor_loop(soft):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 16, generator=g)
    pid = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    loss = TripletLoss(margin=0.3, soft_margin=soft)({'features': x}, _batch(pid))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(_loop_triplet(x, pid, 0.3, soft).item(), rel=1e-5)


def test_triplet_matches_torchreid_hard_margin():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(16, 32, generator=g)
    pid = torch.arange(4).repeat_interleave(4)
    ours = TripletLoss(margin=0.5)({'features': x}, _batch(pid))
    theirs = ReidTriplet(margin=0.5)(x, pid)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert ours.item() > 0  # non-trivial case


def test_triplet_normalize_feature():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 8, generator=g) * 5
    pid = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    ours = TripletLoss(normalize_feature=True)({'features': x}, _batch(pid))
    ref = _loop_triplet(torch.nn.functional.normalize(x, dim=1), pid, 0.3, False)
    assert ours.item() == pytest.approx(ref.item(), rel=1e-5)


def test_triplet_excludes_anchors_without_positive():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(7, 8, generator=g)
    pid = torch.tensor([0, 0, 0, 1, 1, 2, 3])  # pids 2 and 3 are singletons
    loss = TripletLoss(margin=1.0)({'features': x}, _batch(pid))
    keep = slice(0, 5)
    # Same as the loop over the 5 anchors with positives, negatives from the whole batch.
    ref = _loop_triplet(x, pid, 1.0, False)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    # ...and differs from treating singletons as anchors with d_ap = 0.
    d = torch.cdist(x, x)
    same = pid[:, None] == pid[None]
    d_ap = (d * (same & ~torch.eye(7, dtype=torch.bool))).amax(1)
    d_an = d.masked_fill(same, float('inf')).amin(1)
    with_singletons = torch.relu(d_ap - d_an + 1.0).mean()
    assert with_singletons.item() != pytest.approx(loss.item(), rel=1e-3)
    assert torch.relu(d_ap - d_an + 1.0)[keep].mean().item() == pytest.approx(loss.item(), rel=1e-5)


def test_triplet_no_valid_anchor_is_zero_with_grad():
    x = torch.randn(3, 4, requires_grad=True)
    loss = TripletLoss()({'features': x}, _batch([0, 1, 2]))
    assert loss.item() == 0.
    loss.backward()
    assert x.grad is not None and torch.all(x.grad == 0)


def test_bf16_inputs_give_fp32_loss_close_to_fp32():
    g = torch.Generator().manual_seed(4)
    feats = torch.randn(16, 64, generator=g) * 3 + 10  # offset: cancellation-prone
    logits = torch.randn(16, 10, generator=g)
    pid = torch.arange(4).repeat_interleave(4)
    loss = build_loss(['id', 'triplet'], [1.0, 1.0])
    ref, _ = loss({'features': feats.bfloat16().float(), 'logits': logits.bfloat16().float()},
                  _batch(pid))
    out, parts = loss({'features': feats.bfloat16(), 'logits': logits.bfloat16()}, _batch(pid))
    assert out.dtype == torch.float32 and all(v.dtype == torch.float32 for v in parts.values())
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)


def test_triplet_in_fp32_under_autocast():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 64, generator=g) * 3 + 10
    pid = torch.arange(4).repeat_interleave(4)
    # A bf16 distance matmul would be off by ~1e-2 here; the fp32 loop is not.
    ref = _loop_triplet(x.double(), pid, 0.3, True)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = TripletLoss(soft_margin=True)({'features': x}, _batch(pid))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(ref.item(), rel=1e-5)


# --- composite ----------------------------------------------------------------

def test_composite_weights_and_parts():
    g = torch.Generator().manual_seed(6)
    outputs = {'features': torch.randn(8, 8, generator=g),
               'logits': torch.randn(8, 4, generator=g)}
    b = _batch(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    loss = build_loss(['id', 'triplet'], [0.5, 2.0],
                      {'id': {'label_smooth': 0.}, 'triplet': {'margin': 1.0}})
    assert isinstance(loss, CompositeLoss)
    total, parts = loss(outputs, b)
    id_ref = IDLoss(label_smooth=0.)(outputs, b)
    tri_ref = TripletLoss(margin=1.0)(outputs, b)
    assert set(parts) == {'id', 'triplet'}
    assert float(parts['id']) == pytest.approx(id_ref.item(), rel=1e-6)
    assert float(parts['triplet']) == pytest.approx(tri_ref.item(), rel=1e-6)
    assert total.item() == pytest.approx(0.5 * id_ref.item() + 2.0 * tri_ref.item(), rel=1e-6)
    assert not parts['id'].requires_grad


def test_gradients_flow_to_both_outputs():
    g = torch.Generator().manual_seed(7)
    feats = torch.randn(8, 8, generator=g, requires_grad=True)
    logits = torch.randn(8, 4, generator=g, requires_grad=True)
    b = _batch(torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    total, _ = build_loss(['id', 'triplet'], [1.0, 1.0],
                          {'triplet': {'margin': 10.0}})({'features': feats, 'logits': logits}, b)
    total.backward()
    for t in (feats, logits):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_build_loss_errors():
    with pytest.raises(ValueError, match='2 names'):
        build_loss(['id', 'triplet'], [1.0])
    with pytest.raises(KeyError, match='triplet'):  # close match suggested
        build_loss(['tripplet'], [1.0])
    with pytest.raises(ValueError, match='trplet'):
        build_loss(['triplet'], [1.0], {'trplet': {'margin': 0.1}})


def test_terms_registered_on_import():
    assert LOSSES.get('id') is IDLoss and LOSSES.get('triplet') is TripletLoss


def test_missing_batch_pid_names_key():
    with pytest.raises(KeyError, match="'pid'"):
        TripletLoss()({'features': torch.randn(4, 3)}, {'camid': torch.zeros(4)})


def test_triplet_distances_stable_for_large_offsets():
    # |x|^2 ~ 6e7 here: without centring, fp32 cancellation errs by several units in d^2.
    g = torch.Generator().manual_seed(8)
    x = torch.randn(16, 64, generator=g) + 1000.
    pid = torch.arange(4).repeat_interleave(4)
    ref = _loop_triplet(x.double(), pid, 0.3, True)
    out = TripletLoss(soft_margin=True)({'features': x}, _batch(pid))
    assert out.item() == pytest.approx(ref.item(), rel=1e-4)
