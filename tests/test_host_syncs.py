"""No host sync in a training step but the one the engine documents (issue 28.6): the ops
that would make the host wait for a GPU are counted on the CPU by a dispatch mode
(``vireid_plugin.benchmark.host_syncs``); the sync-free loss terms still compute their
definitions, checked against plain per-anchor loops on batches where some anchors have
no partner."""
import pytest
import torch

from vireid_plugin.benchmark.host_syncs import HostSyncCounter, recipe_syncs
from vireid_plugin.losses.hetero_center import hetero_center_loss
from vireid_plugin.losses.msel import ModalitySharedEnhancementLoss
from vireid_plugin.losses.prototype_text import prototype_text_loss
from vireid_plugin.losses.wrt_triplet import wrt_triplet

pytestmark = pytest.mark.usefixtures('one_thread')


def test_the_counter_sees_the_ops_that_sync_a_gpu():
    x = torch.randn(6)
    with HostSyncCounter() as c:
        x.sum().item()              # 1
        bool((x > 0).any())         # 1
        x[x > 0]                    # 1: boolean indexing
        torch.unique(x)             # 1
        torch.where(x > 0, x, 0.).sum() / (x > 0).sum().clamp(min=1)   # 0
        x.masked_fill(x > 0, 0.)    # 0
    assert c.total == 4, c.by_site


def irregular_batch():
    """Ids 0-2 with both modalities (2 + 2, 1 + 2, 3 + 1 samples), id 3 visible only,
    id 4 one infrared sample: anchors without an intra or a cross partner exist."""
    pid = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 4])
    mod = torch.tensor([0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 1])
    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(len(pid), generator=g)
    return torch.randn(len(pid), 8, generator=g, dtype=torch.float64)[perm].float(), \
        pid[perm], mod[perm]


def d(a, b):
    return float(((a.double() - b.double()) ** 2).sum().sqrt())


def msel_reference(x, pid, mod):
    n, per_mod = len(pid), {0: [], 1: []}
    for a in range(n):
        intra = [d(x[a], x[j]) for j in range(n) if j != a and pid[j] == pid[a]
                 and mod[j] == mod[a]]
        cross = [d(x[a], x[j]) for j in range(n) if pid[j] == pid[a] and mod[j] != mod[a]]
        if intra and cross:
            per_mod[int(mod[a])].append((sum(cross) / len(cross) - sum(intra) / len(intra)) ** 2)
    means = [sum(v) / len(v) for v in per_mod.values() if v]
    return sum(means) / len(means) if means else 0.0


def wrt_reference(x, pid):
    import math
    n, out = len(pid), []
    for a in range(n):
        pos = [d(x[a], x[j]) for j in range(n) if j != a and pid[j] == pid[a]]
        neg = [d(x[a], x[j]) for j in range(n) if pid[j] != pid[a]]
        if not pos or not neg:
            continue
        wp = [math.exp(v - max(pos)) for v in pos]
        wn = [math.exp(-v + min(neg)) for v in neg]
        dp = sum(w * v for w, v in zip(wp, pos)) / sum(wp)
        dn = sum(w * v for w, v in zip(wn, neg)) / sum(wn)
        out.append(math.log1p(math.exp(dp - dn)))
    return sum(out) / len(out) if out else 0.0


def centres_of(x, pid, mod):
    keys = sorted({(int(p), int(m)) for p, m in zip(pid, mod)})
    return {k: torch.stack([x[i] for i in range(len(pid)) if (int(pid[i]), int(mod[i])) == k])
            .double().mean(0) for k in keys}


def hetero_reference(x, pid, mod, margin=0.3):
    c, out = centres_of(x, pid, mod), []
    for (p, m), centre in c.items():
        if (p, 1 - m) not in c:
            continue
        others = [float((centre - v).norm()) for (q, _), v in c.items() if q != p]
        if others:
            out.append(max(0.0, float((centre - c[(p, 1 - m)]).norm()) - min(others) + margin))
    return sum(out) / len(out) if out else 0.0


def proto_reference(x, text, pid, mod, temperature=0.07):
    c = centres_of(x, pid, mod)
    t = torch.nn.functional.normalize(text.double(), dim=1)
    losses = []
    for (p, _), centre in c.items():
        logits = t @ torch.nn.functional.normalize(centre, dim=0) / temperature
        losses.append(float(torch.logsumexp(logits, 0) - logits[p]))
    return sum(losses) / len(losses)


@pytest.mark.parametrize('term', ['msel', 'wrt', 'hetero', 'proto'])
def test_loss_terms_compute_their_definition_without_a_host_sync(term):
    x, pid, mod = irregular_batch()
    text = torch.randn(6, 8, generator=torch.Generator().manual_seed(4))
    fn, ref = {
        'msel': (lambda f: ModalitySharedEnhancementLoss.single(f, pid, mod),
                 lambda: msel_reference(x, pid, mod)),
        'wrt': (lambda f: wrt_triplet(f, pid), lambda: wrt_reference(x, pid)),
        'hetero': (lambda f: hetero_center_loss(f, pid, mod), lambda: hetero_reference(
            x, pid, mod)),
        'proto': (lambda f: prototype_text_loss(f, text, pid, mod),
                  lambda: proto_reference(x, text, pid, mod)),
    }[term]
    feats = x.clone().requires_grad_()
    with HostSyncCounter() as c:
        loss = fn(feats)
        loss.backward()
    assert c.total == 0, c.by_site
    assert float(loss.detach()) == pytest.approx(ref(), rel=1e-5, abs=1e-6)
    assert torch.isfinite(feats.grad).all() and feats.grad.abs().sum() > 0


@pytest.mark.parametrize('term', ['msel', 'wrt', 'hetero'])
def test_a_batch_without_any_valid_anchor_gives_zero_and_zero_gradients(term):
    pid = torch.tensor([0, 1, 2, 3])            # one sample per id: no pairs at all
    mod = torch.tensor([0, 1, 0, 1])
    feats = torch.randn(4, 8).requires_grad_()
    loss = {'msel': lambda: ModalitySharedEnhancementLoss.single(feats, pid, mod),
            'wrt': lambda: wrt_triplet(feats, pid),
            'hetero': lambda: hetero_center_loss(feats, pid, mod)}[term]()
    loss.backward()
    assert float(loss) == 0.0
    assert torch.equal(feats.grad, torch.zeros_like(feats))


@pytest.mark.parametrize('config', ['configs/demo_mip.yaml', 'configs/demo_lsmrl.yaml'])
def test_a_training_step_syncs_once(config):
    """MSEL on (last epoch), every LSMRL term, the optimizer a GPU run builds (fused): the
    only sync left is the engine's finite-loss check (train_loop's ``_all_finite``)."""
    result = recipe_syncs(config, ['train.batch_size', '8', 'sampler.num_instances', '2'],
                          steps=1)
    assert result['per_step'] == 1, result['sites']
    assert len(result['sites']) == 1 and 'engine/train_loop.py' in result['sites'][0]
