"""Label-free training (never reads labels), dynamic mask, diagnostic, torchvision models, bad inputs."""

import copy

import lnpt
import pytest
import torch
import torchvision
from maskloop import MaskedTraining, WeightMask, fit
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


def _nets():
    torch.manual_seed(0)
    teacher = lnpt.MLP(8, (16, 12), 3)
    student = lnpt.MLP(8, (16, 12), 3)
    return student, teacher


class PoisonedLabels(Dataset):
    """(x, y) items whose label raises if anything but collation touches it."""

    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], "label"  # a string label: any use as a target would fail


def test_label_free_training_on_inputs_only_reduces_gap_and_keeps_mask():
    student, teacher = _nets()
    x = torch.randn(64, 8)
    loader = DataLoader(lnpt.InputsOnly(x), batch_size=16, shuffle=False)
    mask = lnpt.prune(student, teacher, loader, 0.7)
    mask.apply_(student)
    # the feature term on (the default training is logits only): J includes the learning gap
    trainer = lnpt.LabelFreeTrainer(student, teacher, mask, lr=1e-2, feature_weight=1.0)
    before = trainer.gap.setup(x).feature_gap([x])
    hist = trainer.fit(loader, 15, progress=False)
    assert len(hist) == 15
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert trainer.gap.feature_gap([x]) < before
    for n in mask.names:
        assert (student.get_parameter(n)[~mask[n]] == 0).all()
    # hooks are removed after fit: the student trains freely again
    student.get_parameter(mask.names[0]).sum().backward()
    assert (student.get_parameter(mask.names[0]).grad != 0).all()


def test_labels_are_never_read():
    student, teacher = _nets()
    x = torch.randn(32, 8)
    s1, s2 = copy.deepcopy(student), copy.deepcopy(student)
    torch.manual_seed(1)
    lnpt.LabelFreeTrainer(s1, teacher).fit(
        DataLoader(PoisonedLabels(x), batch_size=8), 3, progress=False
    )
    torch.manual_seed(1)
    lnpt.LabelFreeTrainer(s2, teacher).fit(
        DataLoader(TensorDataset(x), batch_size=8), 3, progress=False
    )
    for a, b in zip(s1.parameters(), s2.parameters()):
        torch.testing.assert_close(a, b)
    lnpt.score(student, teacher, DataLoader(PoisonedLabels(x), batch_size=8))


def test_dynamic_mask_moves_weights_at_fixed_sparsity():
    student, teacher = _nets()
    x = torch.randn(64, 8)
    loader = DataLoader(lnpt.InputsOnly(x), batch_size=16)
    mask = lnpt.prune(student, teacher, loader, 0.6)
    mask.apply_(student)
    dyn = lnpt.DynamicMask(every=2, fraction=0.3, decay="constant")
    trainer = lnpt.LabelFreeTrainer(student, teacher, mask, dynamic_mask=dyn, lr=1e-2)
    trainer.fit(loader, 5, progress=False)
    assert dyn.updates and dyn.updates[0]["moved"] > 0
    assert trainer.mask != mask
    assert trainer.mask.num_pruned == mask.num_pruned
    for n in trainer.mask.names:
        assert (student.get_parameter(n)[~trainer.mask[n]] == 0).all()


def test_label_free_objective_in_maskloop_fit():
    """LabelFreeObjective: maskloop.fit on inputs-only batches lowers J; logs are recorded."""
    student, teacher = _nets()
    x = torch.randn(32, 8)
    gap = lnpt.LearningGap(student, teacher).setup(x)
    before = gap(x).item()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    hist = fit(
        student,
        DataLoader(lnpt.InputsOnly(x), batch_size=8),
        epochs=5,
        optimizer=opt,
        objective=lnpt.LabelFreeObjective(gap),
        progress=False,
    )
    assert gap(x).item() < before
    assert len(hist["train_feature_gap"]) == 5 and len(hist["train_kd"]) == 5


def test_label_free_training_resumes_from_a_checkpoint_to_identical_weights(tmp_path):
    """LabelFreeTrainer + maskloop.Checkpoint: stopped after 2 of 4 epochs and resumed, the
    student, its mask and the linear adaptor end exactly as in an uninterrupted run."""
    from maskloop import Callback, Checkpoint

    torch.manual_seed(0)
    teacher = lnpt.MLP(8, (16, 10), 3)  # another width: a learned linear adaptor
    init = lnpt.MLP(8, (16, 12), 3)
    x = torch.randn(48, 8)
    mask = lnpt.prune(init, teacher, [x], 0.6)
    init = init.double()
    teacher = teacher.double()
    x = x.double()

    def run(callbacks):
        student = copy.deepcopy(init)
        mask.apply_(student)
        gen = torch.Generator().manual_seed(3)
        loader = DataLoader(lnpt.InputsOnly(x), batch_size=8, shuffle=True, generator=gen)
        trainer = lnpt.LabelFreeTrainer(student, teacher, mask, lr=1e-2)
        trainer.fit(loader, 4, callbacks=callbacks, progress=False)
        return student, trainer

    class StopAfter(Callback):
        def on_epoch_end(self, state):
            if state.epoch == 2:
                state.stop_training = True

    full, full_tr = run([])
    run([StopAfter(), Checkpoint(tmp_path)])
    resumed, res_tr = run([Checkpoint(tmp_path)])
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert torch.equal(full_tr.gap.adaptor.map.weight, res_tr.gap.adaptor.map.weight)
    for n in mask.names:
        assert (resumed.get_parameter(n)[~mask[n]] == 0).all()


def test_diagnostic_records_and_correlates():
    student, teacher = _nets()
    x = torch.randn(48, 8)
    y = teacher(x).argmax(1)
    diag = lnpt.LearningGapDiagnostic(student, teacher, [x], [(x, y)])
    lnpt.LabelFreeTrainer(student, teacher, lr=1e-2, feature_weight=1.0).fit(
        [x[:24], x[24:]], 6, callbacks=[diag], progress=False
    )
    assert len(diag.rows) == 7 and diag.rows[0]["weight_distance"] == 0.0
    assert diag.rows[-1]["learning_gap"] < diag.rows[0]["learning_gap"]
    corr = diag.correlations()
    assert set(corr) == {"weight_distance", "learning_gap"}
    assert lnpt.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def _small_vgg(num_classes=4):
    """A torchvision VGG (built without weights) with small conv widths and head."""
    from torchvision.models.vgg import make_layers

    vgg = torchvision.models.VGG(make_layers([8, "M", 16, "M"]), num_classes=num_classes)
    vgg.classifier = nn.Sequential(nn.Linear(16 * 7 * 7, 32), nn.ReLU(), nn.Linear(32, num_classes))
    return vgg


def test_torchvision_resnet_student_vgg_teacher():
    torch.manual_seed(0)
    student = torchvision.models.resnet18(num_classes=4)
    teacher = _small_vgg()
    x = torch.randn(2, 3, 32, 32)
    mask = lnpt.prune(student, teacher, [x], 0.9, rounds=2)  # iterative; 2 rounds keep it fast
    assert isinstance(mask, WeightMask) and "conv1.weight" in mask and "fc.weight" in mask
    assert mask.num_pruned == round(0.9 * mask.numel)
    gap = lnpt.LearningGap(student, teacher).setup(x)
    assert isinstance(gap.adaptor.map, nn.Linear)  # 512 -> 32: learned adaptor
    assert gap.adaptor.map.weight.shape == (32, 512)
    # CNN maps by module name are pooled; unpooled maps use a 1x1 conv adaptor
    g2 = lnpt.LearningGap(
        student,
        teacher,
        feature_layer="layer1",  # 64 x 16 x 16 maps
        teacher_layer="features",  # 16 x 16 x 16 maps
        which="output",
        pool=None,
        adaptor="linear",
    ).setup(torch.randn(2, 3, 64, 64))
    assert isinstance(g2.adaptor.map, nn.Conv2d)
    assert g2.adaptor.map.weight.shape == (16, 64, 1, 1)
    assert g2(torch.randn(2, 3, 64, 64)).ndim == 0


def test_torchvision_vgg_student_resnet_teacher_trains_label_free():
    torch.manual_seed(0)
    student = _small_vgg()
    teacher = torchvision.models.resnet18(num_classes=4).eval()
    x = torch.randn(8, 3, 32, 32)
    opts = {"feature_layer": "features", "teacher_layer": "layer4", "which": "output"}
    mask = lnpt.prune(student, teacher, [x[:4], x[4:]], 0.8, **opts)
    assert set(mask.names) == {
        "features.0.weight",
        "features.3.weight",
        "classifier.0.weight",
        "classifier.2.weight",
    }
    mask.apply_(student)
    trainer = lnpt.LabelFreeTrainer(student, teacher, mask, lr=1e-2, **opts)
    hist = trainer.fit([x[:4], x[4:]], 3, progress=False)
    assert trainer.gap.adaptor.map.weight.shape == (512, 16)  # pooled 16 channels -> 512
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    for n in mask.names:
        assert (student.get_parameter(n)[~mask[n]] == 0).all()


def test_cnn_feature_maps_are_globally_pooled():
    torch.manual_seed(0)
    net = lnpt.SmallCNN((4, 4, 8))
    x = torch.randn(3, 1, 8, 8)
    feats, logits = lnpt.FeatureExtractor(net, "features", which="output")(x)
    torch.testing.assert_close(feats, net.features(x).mean(dim=(2, 3)))
    torch.testing.assert_close(logits, net(x))
    maps, _ = lnpt.FeatureExtractor(net, "features", which="output", pool=None)(x)
    assert maps.shape == (3, 8, 4, 4)
    # the default layer (input of the last Linear) is the same pooled vector here
    default, _ = lnpt.FeatureExtractor(net)(x)
    torch.testing.assert_close(default, feats)


def test_small_cnn_scores_all_layers():
    torch.manual_seed(0)
    student, teacher = lnpt.SmallCNN((4, 4, 8)), lnpt.SmallCNN((4, 8, 8))
    x = torch.randn(6, 1, 8, 8)
    scores = lnpt.score(student, teacher, [x])
    assert set(scores) == {
        "features.0.weight",
        "features.2.weight",
        "features.5.weight",
        "fc.weight",
    }
    mask = lnpt.prune(student, teacher, [x], 0.5)
    opt = torch.optim.SGD(student.parameters(), lr=0.1)
    with MaskedTraining(student, mask, opt):
        lnpt.LabelFreeTrainer(student, teacher, mask).fit([x], 2, progress=False)


def test_teacher_is_queried_online_and_linear_adaptor_is_learned():
    torch.manual_seed(0)
    student, teacher = lnpt.MLP(8, (16, 12), 3), lnpt.MLP(8, (16, 20), 3)
    calls = []
    teacher.register_forward_hook(lambda m, a, o: calls.append(a[0].shape[0]))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    batches = [torch.randn(5, 8), torch.randn(7, 8), torch.randn(6, 8)]
    trainer = lnpt.LabelFreeTrainer(student, teacher, lr=1e-2, feature_weight=1.0)
    trainer.gap.setup(batches)
    a0 = trainer.gap.adaptor.map.weight.detach().clone()
    calls.clear()
    trainer.fit(batches, 2, progress=False)
    assert calls[-6:] == [5, 7, 6, 5, 7, 6]  # one teacher forward per batch, every epoch
    assert not torch.equal(trainer.gap.adaptor.map.weight, a0)  # A trained with the student
    for k, v in teacher.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_logit_distillation_term_is_tau2_kl_and_optional():
    student, teacher = _nets()
    x = torch.randn(10, 8)
    gap = lnpt.LearningGap(student, teacher, feature_weight=0.0, kd_weight=1.0, temperature=3.0)
    gap.setup(x)
    p_t = torch.softmax(teacher(x) / 3.0, -1)
    log_p_s = torch.log_softmax(student(x) / 3.0, -1)
    kl = torch.nn.functional.kl_div(log_p_s, p_t, reduction="batchmean")
    assert gap(x).item() == pytest.approx(9.0 * kl.item(), rel=1e-5)
    feat_only = lnpt.LearningGap(student, teacher, kd_weight=0.0).setup(x)
    both = lnpt.LearningGap(student, teacher, kd_weight=1.0, temperature=3.0).setup(x)
    assert both(x).item() == pytest.approx(feat_only(x).item() + gap(x).item(), rel=1e-5)


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity(sparsity):
    student, teacher = _nets()
    with pytest.raises(ValueError, match="sparsity must be in"):
        lnpt.prune(student, teacher, [torch.randn(4, 8)], sparsity)


def test_bad_feature_layer_name():
    student, teacher = _nets()
    with pytest.raises(ValueError, match="'nope' is not a module"):
        lnpt.score(student, teacher, [torch.randn(4, 8)], feature_layer="nope")


def test_teacher_student_output_mismatch():
    student = lnpt.MLP(8, (16,), 3)
    teacher = lnpt.MLP(8, (16,), 5)
    with pytest.raises(ValueError, match="outputs do not match"):
        lnpt.score(student, teacher, [torch.randn(4, 8)])


def test_identity_adaptor_needs_equal_widths():
    student, teacher = lnpt.MLP(8, (16,), 3), lnpt.MLP(8, (20,), 3)
    with pytest.raises(ValueError, match="adaptor='identity' needs equal feature widths"):
        lnpt.score(student, teacher, [torch.randn(4, 8)], adaptor="identity")


def test_empty_loader():
    student, teacher = _nets()
    with pytest.raises(ValueError, match="unlabeled is empty"):
        lnpt.prune(student, teacher, [], 0.5)
    empty = DataLoader(lnpt.InputsOnly(torch.randn(3, 8)), batch_size=2, sampler=[])
    with pytest.raises(ValueError, match="unlabeled is empty"):
        lnpt.LabelFreeTrainer(student, teacher).fit(empty, 1, progress=False)


def test_bad_types_and_options():
    student, teacher = _nets()
    x = torch.randn(4, 8)
    with pytest.raises(TypeError, match="not a bare tensor"):
        lnpt.score(student, teacher, x)
    with pytest.raises(TypeError, match="teacher must be a torch.nn.Module"):
        lnpt.score(student, "teacher", [x])
    with pytest.raises(ValueError, match="adaptor must be"):
        lnpt.score(student, teacher, [x], adaptor="mlp")
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        lnpt.prune(student, teacher, [x], 0.5, rounds=0)
    with pytest.raises(ValueError, match="both 0"):
        lnpt.LearningGap(student, teacher, feature_weight=0.0, kd_weight=0.0)
    with pytest.raises(ValueError, match="dynamic_mask needs a mask"):
        lnpt.LabelFreeTrainer(student, teacher, dynamic_mask=lnpt.DynamicMask())
    with pytest.raises(ValueError, match="fraction must be in"):
        lnpt.DynamicMask(fraction=1.0)
    with pytest.raises(TypeError, match="mapping"):
        lnpt.score(student, teacher, [{"x": x}])
    with pytest.raises(TypeError, match="sync must be True, False or None"):
        lnpt.score(student, teacher, [x], sync="yes")
    with pytest.raises(ValueError, match="sync=True needs an initialised torch.distributed"):
        lnpt.prune(student, teacher, [x], 0.5, sync=True)
