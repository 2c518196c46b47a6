"""CrossModalEngine on a toy model and loader (no dataset files)."""

import torch

from vireid_plugin.data.sampler import CrossModalIdentitySampler
from vireid_plugin.engine import CrossModalEngine
from vireid_plugin.optim import WarmupCosineLR
from vireid_plugin.losses import build_loss

from tests.helpers import toy_data_manager


class ToyModel(torch.nn.Module):
    """Follows the model contract and records what the engine passed."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.fc = torch.nn.Linear(3, 8)
        self.cls = torch.nn.Linear(8, num_classes)
        self.seen = []

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        self.seen.append((x.shape, modality.tolist(), camid.tolist()))
        f = self.fc(x.flatten(1))
        if not self.training:
            return f
        if not named_outputs:   # torchreid's contract: the engine must ask for the dict
            return self.cls(f)
        return {'features': f, 'bn_features': f, 'logits': self.cls(f)}


def image(i, pid):
    return torch.full((3,), float(i))


def make_engine():
    # 4 ids x (3 visible on camid 0 + 3 infrared on camid 2)
    items = [('p', pid, 2 * m, 0, m) for pid in range(4) for m in (0, 1) for _ in range(3)]
    sampler = CrossModalIdentitySampler(items, batch_size=8, num_instances=2, seed=3)
    dm = toy_data_manager(items, image, sampler)
    model = ToyModel()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = WarmupCosineLR(opt, total_iters=100, warmup_iters=10)
    engine = CrossModalEngine(dm, model, opt, build_loss(['id', 'triplet'], [1.0, 1.0]),
                              scheduler=sched, use_gpu=False)
    engine.max_epoch = 2
    return engine, model, sampler, sched


def test_epochs_reshuffle_and_model_gets_modality_and_camid():
    engine, model, sampler, sched = make_engine()
    orders = []
    for epoch in range(2):
        engine.epoch = epoch
        engine.train(print_freq=100)
        orders.append(list(iter(sampler)))
    assert sampler.epoch == 1
    assert orders[0] != orders[1]          # the seeded sampler was told the epoch
    shape, modality, camid = model.seen[0]
    # batch = per id K=2 visible (camid 0) then K=2 infrared (camid 2)
    assert modality[:4] == [0, 0, 1, 1] and camid[:4] == [0, 0, 2, 2]


def test_scheduler_steps_per_iteration_not_per_epoch():
    engine, model, sampler, sched = make_engine()
    engine.epoch = 0
    engine.train(print_freq=100)
    # one epoch = sampler.num_batches iterations; update_lr at epoch end adds nothing
    assert sched.last_epoch == sampler.num_batches


def test_fixbase_trains_only_the_default_open_layers():
    """torchreid's fixbase_epoch freezes all but train.open_layers; the default must
    name the plugin models' head (torchreid's default 'classifier' does not exist)."""
    from vireid_plugin.config import get_default_config
    from vireid_plugin.models import build_model
    model = build_model('vit_tiny_reid', 5, pretrained=False)
    engine, _, _, _ = make_engine()
    engine.model = model
    engine.two_stepped_transfer_learning(0, 1, list(get_default_config().train.open_layers),
                                         model=model)
    trainable = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'head'}


def test_bf16_autocast_step_keeps_fp32_weights_and_losses():
    """The GPU default (bf16 autocast) exercised on CPU, where torch supports it too."""
    from vireid_plugin.models import build_model
    engine, _, _, _ = make_engine()
    model = build_model('vit_tiny_reid', 4, pretrained=False, img_size=(32, 16), num_cameras=3)
    engine.model = model
    engine.optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    engine.scheduler = None  # the toy scheduler belongs to the toy optimizer
    engine.precision = type(engine.precision)('bf16', 'cpu')
    seen = {}

    def spy(outputs, batch):
        seen['dtype'] = outputs['logits'].dtype
        return engine_criterion(outputs, batch)

    engine_criterion, engine.criterion = engine.criterion, spy
    data = {'img': torch.randn(8, 3, 32, 16), 'pid': torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
            'camid': torch.tensor([0, 2] * 4), 'modality': torch.tensor([0, 1] * 4)}
    before = model.head.classifier.weight.detach().clone()
    summary = engine.forward_backward(data)
    assert seen['dtype'] == torch.bfloat16          # the model ran under autocast
    assert all(p.dtype == torch.float32 for p in model.parameters())
    # fp32 0-d tensors still on the device (no host sync per step), finite
    assert all(torch.is_tensor(v) and v.dim() == 0 and v.dtype == torch.float32 and
               bool(torch.isfinite(v)) for v in summary.values())
    assert not torch.equal(before, model.head.classifier.weight)
