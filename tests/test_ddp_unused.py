"""DDP without find_unused_parameters for models that declare their unused parameters
(issue 28.5), the pre-emption flag agreed inside the log's reduction (28.6) and every
rank's CUDA random state gathered for a checkpoint (25.7): 2 gloo processes. MIP's
backbone blocks that its heads replace are frozen and named to DDP as ignored, so 'auto'
is False and steps run even after something un-freezes every parameter (torchreid's
open_all_layers at each epoch start)."""
import torch
import torch.multiprocessing as mp

from tests.helpers import config_file, free_port, gloo_rank
STEPS = 3


def _worker(rank, world, port, errors, results):
    gloo_rank(rank, port, world)
    try:
        from vireid_plugin import distributed
        from vireid_plugin.config import load_config
        from vireid_plugin.engine.train_log import LossWindow
        from vireid_plugin.runner import build_criterion, build_reid_model
        distributed.init_distributed(use_gpu=False)
        cfg = load_config(config_file('demo_mip.yaml'),
                          ['data.height', '64', 'data.width', '32'])
        torch.manual_seed(0)
        model = build_reid_model(cfg, 4, 3)
        criterion = build_criterion(cfg, model, 4)
        criterion.set_epoch(cfg.train.max_epoch - 1)       # MSEL on
        model.train()
        for p in model.parameters():    # what torchreid's open_all_layers does
            p.requires_grad = True
        ddp = distributed.wrap_model(model, 'cpu', 'auto')
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        g = torch.Generator().manual_seed(rank)
        pid = torch.arange(2).repeat_interleave(4)
        modality = torch.tensor([0, 0, 1, 1] * 2)
        for _ in range(STEPS):      # without the fix DDP raises at the 2nd step
            x = torch.randn(8, 3, 64, 32, generator=g)
            out = ddp(x, modality=modality, camid=modality * 2, named_outputs=True)
            loss, _ = criterion(out, {'pid': pid, 'modality': modality, 'camid': modality * 2})
            opt.zero_grad()
            loss.backward()
            opt.step()
        weights = torch.cat([p.detach().flatten() for p in model.parameters()])
        # the pre-emption flag: only rank 1 got a signal; both learn it from the log's
        # reduction, whose loss means stay the plain means over the ranks
        window = LossWindow()
        window.add({'loss': torch.tensor(float(rank + 1))}, 8)
        means = window.flush(flag=rank == 1)[0]
        quiet = LossWindow()
        quiet.add({'loss': torch.tensor(1.0)}, 8)
        quiet.flush(flag=False)
        # every rank's CUDA random state, gathered for the checkpoint (a fake device list:
        # a CPU generator stands in for each process's GPU 0)
        from vireid_plugin.data.seeded import cuda_rng_states
        states = cuda_rng_states(torch.device('cuda', 0), [torch.Generator().manual_seed(rank)])
        seeds = [int(torch.Generator().set_state(s).initial_seed()) for s in states]
        results.put((rank, ddp.find_unused_parameters, float(weights.sum()),
                     window.flag, means['loss'], quiet.flag, seeds))
    except BaseException as exc:   # reported by the parent
        errors.put('rank {}: {!r}'.format(rank, exc))
        raise
    finally:
        distributed.shutdown()


def test_mip_trains_under_ddp_without_find_unused_and_ranks_agree_on_a_signal(monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    ctx = mp.get_context('spawn')
    errors, results = ctx.SimpleQueue(), ctx.SimpleQueue()
    mp.start_processes(_worker, args=(2, free_port(), errors, results), nprocs=2, join=True,
                       start_method='spawn')
    assert errors.empty(), errors.get()
    rows = sorted(results.get() for _ in range(2))
    for rank, find_unused, weights, flag, mean, quiet, seeds in rows:
        assert find_unused is False
        assert seeds == [0, 1]                    # rank order, each rank's own
        assert flag is True and quiet is False
        assert mean == 1.5                        # (1 + 2) / 2
    assert rows[0][2] == rows[1][2]               # one model on both ranks


def test_auto_choice():
    from vireid_plugin.distributed import find_unused_choice
    from vireid_plugin.models import build_model

    class Undeclared(torch.nn.Module):
        pass
    assert find_unused_choice(Undeclared(), 'auto') is True
    for name in ('mip_vit_tiny', 'vit_tiny_reid', 'vit_tiny_video_avg'):
        assert find_unused_choice(build_model(name, 4, pretrained=False), 'auto') is False
    assert find_unused_choice(Undeclared(), 'false') is False
    assert find_unused_choice(Undeclared(), True) is True
