"""train.fixbase_epoch under DistributedDataParallel (2 gloo processes): the backbone that opens
after the frozen epochs trains on the gradient of the global batch, so both ranks keep the
weights of the single-process run (the DDP wrapper follows the set of trainable parameters)."""
import os

import torch
import torch.multiprocessing as mp

from tests.helpers import free_port, gloo_rank, toy_data_manager

EPOCHS, FIXBASE = 3, 1


class Toy(torch.nn.Module):
    """No BatchNorm, no dropout: the mean loss over two half batches is the whole batch's."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.fc = torch.nn.Linear(3, 8)
        self.cls = torch.nn.Linear(8, num_classes)

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        f = self.fc(x.flatten(1))
        if not self.training:
            return f
        return {'features': f, 'logits': self.cls(f)}


def image(i, pid):
    return torch.randn(3, generator=torch.Generator().manual_seed(i)) + pid


def train(world=1, rank=0):
    from vireid_plugin.data.sampler import CrossModalIdentitySampler
    from vireid_plugin.engine import CrossModalEngine
    from vireid_plugin.losses import build_loss
    items = [('p', pid, 2 * m, 0, m) for pid in range(4) for m in (0, 1) for _ in range(6)]
    sampler = CrossModalIdentitySampler(items, batch_size=8, num_instances=1, seed=3,
                                        num_replicas=world, rank=rank)
    dm = toy_data_manager(items, image, sampler, sampler.local_batch_size)
    torch.manual_seed(0)
    model = Toy()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    engine = CrossModalEngine(dm, model, opt, build_loss(['id'], [1.0]), use_gpu=False)
    engine.max_epoch = EPOCHS
    for engine.epoch in range(EPOCHS):
        engine.train(print_freq=1000, fixbase_epoch=FIXBASE, open_layers=['cls'])
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _rank(rank, port, out):
    gloo_rank(rank, port)
    from vireid_plugin import distributed
    distributed.init_distributed(use_gpu=False)
    try:
        torch.save(train(2, rank), os.path.join(out, 'rank{}.pt'.format(rank)))
    finally:
        distributed.shutdown()


def test_two_ranks_with_a_frozen_start_keep_the_single_process_weights(tmp_path, monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        init = Toy().state_dict()
        single = train()
    finally:
        torch.set_num_threads(threads)
    # the premise: the backbone (fc) was frozen in epoch 1 and trained after it
    assert not torch.equal(single['fc.weight'], init['fc.weight'])
    mp.start_processes(_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='spawn')
    for rank in range(2):
        state = torch.load(str(tmp_path / 'rank{}.pt'.format(rank)), weights_only=True)
        for k, v in single.items():
            assert torch.allclose(state[k], v, atol=1e-5), (rank, k, (state[k] - v).abs().max())
