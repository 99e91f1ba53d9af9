"""A run as code for PyTorch or Keras: the same network, optimizer, decay and recorded changes.

``pytorch_snippet(config)`` and ``keras_snippet(config)`` return the source of a Python module. Its
hyperparameters are the run's initial ones (``config.hyperparameters``), and the live changes
(``config.schedule``, or ``changes``) are replayed update by update, each in force from its update
on, counted from 1. Neither framework is imported here: the snippets are text.

The course's formulas and the frameworks' differ in small ways; each conversion is written next to
the code it produced, and summarised in the snippet's header:

    momentum  course  v = beta·v + (1 − beta)·dW;  W −= alpha·v
              torch   buf = momentum·buf + (1 − dampening)·g;  W −= lr·buf
                      → momentum = dampening = beta, lr = alpha, buf started at 0 (torch starts it at g)
              keras   v = momentum·v − lr·g;  W += v
                      → momentum = beta, learning_rate = alpha·(1 − beta)   (exact while alpha is constant)
    rmsprop   torch   alpha = beta2, eps = epsilon (outside the square root, as the course)
              keras   rho = beta2, epsilon = epsilon² (Keras adds it inside the square root)
    adam      torch   betas = (beta1, beta2), eps = epsilon (the course's placement)
              keras   beta_1, beta_2, epsilon = epsilon ("epsilon hat": the course's once beta2^t ≈ 0)
    L2        lambd/(2m)·Σ‖W‖² on weights, m = mini-batch size
              torch   weight_decay = lambd/m on a param group of the weights only
              keras   kernel_regularizer = L2(lambd/(2m))
"""

import json
import textwrap

from babysit import __version__
from babysit.config import Change, parse_schedule
from babysit.hyperparams import FIELDS
from models.schedules import STAIRCASE_EPOCHS

# hyperparameters that LambdaLR / the Keras schedule carry, and those the training loop reads itself
RATE_FIELDS = ("alpha", "decay_schedule", "learning_rate_decay")
LOOP_FIELDS = ("lambd", "mini_batch_size")
# which hyperparameters each optimizer reads
USES = {
    "gd": (),
    "momentum": ("beta",),
    "rmsprop": ("beta2", "epsilon"),
    "adam": ("beta1", "beta2", "epsilon"),
}
# the Keras optimizer argument each course hyperparameter becomes
KERAS_NAMES = {
    "gd": {},
    "momentum": {"beta": "momentum"},
    "rmsprop": {"beta2": "rho", "epsilon": "epsilon"},
    "adam": {"beta1": "beta_1", "beta2": "beta_2", "epsilon": "epsilon"},
}
TORCH_ACTIVATIONS = {"relu": "nn.ReLU", "tanh": "nn.Tanh", "sigmoid": "nn.Sigmoid"}
TORCH_DTYPES = {"float64": "torch.float64", "float32": "torch.float32"}


# -- conversions --------------------------------------------------------------------------------------


def torch_optimizer(hp):
    """(torch.optim class name, keyword arguments) for babysit's optimizer and hyperparameters ``hp``.

    momentum: torch's buffer is buf = momentum·buf + (1 − dampening)·g and W −= lr·buf, so
    momentum = dampening = beta and lr = alpha give the course's v = beta·v + (1 − beta)·dW exactly,
    provided buf starts at 0 (torch itself starts it at g, undampened: the snippet seeds zeros).
    """
    if hp.optimizer == "gd":
        return "SGD", {"lr": hp.alpha}
    if hp.optimizer == "momentum":
        return "SGD", {"lr": hp.alpha, "momentum": hp.beta, "dampening": hp.beta}
    if hp.optimizer == "rmsprop":
        return "RMSprop", {"lr": hp.alpha, "alpha": hp.beta2, "eps": hp.epsilon}
    return "Adam", {"lr": hp.alpha, "betas": (hp.beta1, hp.beta2), "eps": hp.epsilon}


def torch_weight_decay(hp):
    """lambd/(2m)·Σ‖W‖² adds (lambd/m)·W to dW: torch's weight_decay = lambd/m, on the weights only."""
    return hp.lambd / hp.mini_batch_size


def keras_optimizer(hp):
    """(keras.optimizers class name, keyword arguments) for babysit's optimizer and ``hp``.

    momentum: Keras keeps v = momentum·v − lr·g and adds v to W; with lr = alpha·(1 − beta) its v is
    −alpha × the course's v, exactly while alpha is constant. rmsprop: Keras divides by
    sqrt(s + epsilon), the course by sqrt(s) + epsilon; epsilon² agrees at s = 0 and for s ≫ epsilon²,
    and is within a factor √2 in between. adam: Keras's epsilon is "epsilon hat", added to sqrt(s)
    before the bias correction: it equals the course's epsilon·sqrt(1 − beta2^t), so the same value
    is exact once beta2^t ≈ 0 and a slightly larger guard before.
    """
    if hp.optimizer == "gd":
        return "SGD", {"learning_rate": hp.alpha}
    if hp.optimizer == "momentum":
        return "SGD", {"learning_rate": hp.alpha * (1.0 - hp.beta), "momentum": hp.beta}
    if hp.optimizer == "rmsprop":
        return "RMSprop", {"learning_rate": hp.alpha, "rho": hp.beta2, "epsilon": hp.epsilon**2}
    return "Adam", {"learning_rate": hp.alpha, "beta_1": hp.beta1, "beta_2": hp.beta2, "epsilon": hp.epsilon}


def keras_l2(hp):
    """Keras's L2(x) adds x·Σw² to the batch-mean loss, so x = lambd/(2m) with m the mini-batch size."""
    return hp.lambd / (2.0 * hp.mini_batch_size)


# -- the run's changes --------------------------------------------------------------------------------


def resolve_changes(config, changes=None):
    """Validated Changes: ``changes`` (Change objects or {"step", "set"} dicts), or config.schedule."""
    if changes is None:
        return tuple(config.schedule)
    entries = [c.to_dict() if isinstance(c, Change) else c for c in changes]
    return parse_schedule(entries, config.hyperparameters)


def timeline(config, changes):
    """[(step, hyperparameters before, after)] for each change, the hyperparameters as babysit holds them."""
    hp, out = config.hyperparameters, []
    for change in changes:
        new = hp.replace(**change.set)
        out.append((change.step, hp, new))
        hp = new
    return out


# -- code generation ------------------------------------------------------------------------------------


def _lit(value):
    """A Python literal that reads back as exactly ``value``; strings in double quotes."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "(" + ", ".join(_lit(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)


def _derived(value):
    """A computed value as a literal, rounded to 15 significant digits: 1e-16 rather than 1.0000000000000002e-16."""
    if isinstance(value, float):
        return repr(float(f"{value:.15g}"))
    if isinstance(value, tuple):
        return "(" + ", ".join(_derived(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _lit(value)


def _num(x):
    return f"{x:.6g}"


def _kwargs(kwargs):
    return ", ".join(f"{k}={_derived(v)}" for k, v in kwargs.items())


def _comment(text):
    """``text`` as comment lines of at most 120 characters."""
    return "\n".join(textwrap.wrap(text, 118, initial_indent="# ", subsequent_indent="#   ")) + "\n"


def _header(config, changes, framework, source, notes):
    d = config.to_dict()
    d.pop("schedule")
    where = f"run {source}" if source else "a babysit run config"
    lines = [
        f"# Generated by babysit {__version__} from {where}: the same training in {framework}.",
        "# Config (its recorded changes are CHANGES below):",
        *textwrap.wrap(json.dumps(d), 110, initial_indent="#   ", subsequent_indent="#   "),
        f"# Recorded changes: {len(changes)}. Examples are rows here (babysit's are columns).",
    ]
    if config.data.standardize:
        lines.append("# babysit standardised the features (mean and std of the training part): do the same.")
    lines.append("#")
    lines.append("# Conventions (babysit's course formulas → " + framework + "):")
    for note in notes:
        wrapped = textwrap.wrap(note, 108)
        lines.append("# - " + wrapped[0])
        lines += ["#   " + more for more in wrapped[1:]]
    return "\n".join(lines) + "\n"


def _shared_definitions(config, changes):
    """INITIAL, CHANGES and the pure-Python functions both snippets use to replay the run's schedule."""
    hp = config.hyperparameters
    initial = "\n".join(f"    {_lit(name)}: {_lit(getattr(hp, name))}," for name in FIELDS)
    recorded = "\n".join(f"    ({c.step}, {_settings(c.set)})," for c in changes)
    return f'''
LAYERS = {_lit(tuple(config.model.layers))}  # hidden widths
INITIAL = {{  # the hyperparameters in force for update 1
{initial}
}}
CHANGES = [  # recorded live changes: (update, settings), in force from that update on (counted from 1)
{recorded}
]
STAIRCASE_EPOCHS = {STAIRCASE_EPOCHS}


def hyperparams_at(update):
    """The hyperparameters in force for ``update`` (counted from 1): INITIAL and every change up to it."""
    hp = dict(INITIAL)
    for step, settings in CHANGES:
        if step <= update:
            hp.update(settings)
    return hp


def _advance(epoch, position, updates, batch, n_train):
    """(epoch, position) after ``updates`` more mini-batches of ``batch`` examples, a pass's last
    mini-batch taking what is left of it, as babysit does."""
    rest = -(-(n_train - position) // batch)  # updates that finish the current pass
    if updates < rest:
        return epoch, position + updates * batch
    per_pass = -(-n_train // batch)
    updates -= rest
    return epoch + 1 + updates // per_pass, (updates % per_pass) * batch


def epoch_at(update, n_train):
    """Passes over the n_train training examples completed before ``update``, following the
    mini-batch sizes in force (a recorded change of size continues the current pass)."""
    epoch, position, done, batch = 0, 0, 0, INITIAL["mini_batch_size"]
    for step, settings in CHANGES:
        if step >= update:
            break
        if "mini_batch_size" in settings:
            epoch, position = _advance(epoch, position, step - 1 - done, batch, n_train)
            done, batch = step - 1, settings["mini_batch_size"]
    return _advance(epoch, position, update - 1 - done, batch, n_train)[0]


def decayed(schedule, alpha, epoch, rate):
    """babysit's learning-rate decay for an update made during ``epoch``."""
    if schedule == "inverse_time":
        return alpha / (1.0 + rate * epoch)
    if schedule == "exponential":
        return alpha * rate**epoch
    if schedule == "staircase":
        return alpha * rate ** (epoch // STAIRCASE_EPOCHS)
    return alpha  # "none"


def alpha_at(update, n_train):
    """The rate babysit used for ``update``: the base alpha then in force, decayed for its epoch."""
    hp = hyperparams_at(update)
    return decayed(hp["decay_schedule"], hp["alpha"], epoch_at(update, n_train), hp["learning_rate_decay"])
'''


def _settings(settings):
    return "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in settings.items()) + "}"


def _change_summary(before, after):
    return ", ".join(f"{k} {_lit(old)} → {_lit(new)}" for k, (old, new) in before.diff(after).items())


# -- PyTorch ------------------------------------------------------------------------------------------------


def _torch_notes(config):
    return [
        "cost = mean cross-entropy + lambd/(2m)·Σ‖W‖² on the weights only, m = mini-batch size. Its gradient adds "
        "(lambd/m)·W: torch's weight_decay = lambd/m on a param group of the weights alone, the biases in a group "
        "without decay. train() sets it from each mini-batch's size, so it stays exact for a pass's last, smaller "
        "mini-batch and across recorded changes of lambd or mini_batch_size.",
        "momentum: course v = beta·v + (1 − beta)·dW, W −= alpha·v; torch SGD buf = momentum·buf + "
        "(1 − dampening)·g, W −= lr·buf. momentum = dampening = beta and lr = alpha match exactly, except that torch "
        "starts buf at g on its first step (undampened): build_optimizer() starts every buffer at 0, as the course.",
        "rmsprop: torch's `alpha` is the course's beta2; torch adds eps outside the square root, as the course.",
        "adam: torch's bias corrections and eps match the course: W −= lr·v̂/(√ŝ + eps).",
        "learning-rate decay is per epoch and recorded changes per update, so the LambdaLR is stepped after every "
        "update (not every epoch); its factor is alpha_at(update)/INITIAL['alpha'], the epoch being counted from "
        "n_train and the mini-batch sizes in force, as babysit counts it.",
        "changes to beta, beta1, beta2 or epsilon are set on the param groups at their update in train(); a change "
        "of optimizer builds a new one from fresh state, as babysit does.",
        "initial weights are drawn the same way (He normal before relu, Xavier normal otherwise, zero biases), "
        "not the same numbers; the order of examples differs too.",
    ]


def _torch_group_lines(optimizer, names, hp):
    """``g[...] = ...`` lines setting the changed ``names`` on a torch optimizer's param groups."""
    names = set(names)
    if optimizer == "momentum" and "beta" in names:
        return [f'g["momentum"] = {_lit(hp.beta)}', f'g["dampening"] = {_lit(hp.beta)}']
    lines = []
    if optimizer == "rmsprop" and "beta2" in names:
        lines.append(f'g["alpha"] = {_lit(hp.beta2)}')
    if optimizer == "adam" and names & {"beta1", "beta2"}:
        lines.append(f'g["betas"] = ({_lit(hp.beta1)}, {_lit(hp.beta2)})')
    if optimizer in ("rmsprop", "adam") and "epsilon" in names:
        lines.append(f'g["eps"] = {_lit(hp.epsilon)}')
    return lines


def _torch_change_code(config, changes):
    """The training loop's per-update code for each recorded change, with comments for what needs none."""
    out = []
    for step, before, after in timeline(config, changes):
        diff = before.diff(after)
        if not diff:
            continue
        summary = _change_summary(before, after)
        if "optimizer" in diff:
            out += [
                f"        if update == {step}:  # recorded: {summary}",
                "            # babysit starts the new optimizer from fresh state (zero moments, t = 0)",
                "            opt = build_optimizer(model, hyperparams_at(update))",
                "            scheduler = build_scheduler(opt, n_train, done=update - 1)",
            ]
            continue
        used = [n for n in diff if n in USES[after.optimizer]]
        group = _torch_group_lines(after.optimizer, used, after)
        notes = []
        if any(n in diff for n in RATE_FIELDS):
            notes.append("alpha and decay: in the LambdaLR")
        if any(n in diff for n in LOOP_FIELDS):
            notes.append("lambd, mini_batch_size: read below")
        unused = [n for n in diff if n not in RATE_FIELDS + LOOP_FIELDS + USES[after.optimizer]]
        if unused:
            notes.append(f"{', '.join(unused)}: not used by {after.optimizer}")
        if after.optimizer == "momentum" and "beta" in diff and before.beta == 0:
            notes.append("torch kept no buffer while beta was 0 (the course's v was the last gradient)")
        if group:
            out.append(f"        if update == {step}:  # recorded: {summary}")
            if notes:
                out.append(f"            # ({'; '.join(notes)})")
            out.append("            for g in opt.param_groups:")
            out += [f"                {line}" for line in group]
        else:
            out.append(f"        # update {step}: {summary} ({'; '.join(notes)})")
    if not out:
        out.append("        # (no recorded change needs the param groups)")
    return "\n".join(out)


def _torch_optimizer_code(optimizers):
    branches = []
    for name in ("gd", "momentum", "rmsprop", "adam"):
        if name not in optimizers:
            continue
        if name == "gd":
            body = ["return torch.optim.SGD(groups, lr=lr)"]
        elif name == "momentum":
            body = [
                '# dampening = beta: buf = beta·buf + (1 − beta)·g is the course\'s v exactly (lr = alpha)',
                'opt = torch.optim.SGD(groups, lr=lr, momentum=hp["beta"], dampening=hp["beta"])',
                "for p in weights + biases:",
                '    opt.state[p]["momentum_buffer"] = torch.zeros_like(p)  # torch would start at g, undampened',
                "return opt",
            ]
        elif name == "rmsprop":
            body = [
                "# torch's alpha is the course's beta2; eps is added outside the square root, as in the course",
                'return torch.optim.RMSprop(groups, lr=lr, alpha=hp["beta2"], eps=hp["epsilon"])',
            ]
        else:
            body = [
                "# torch's bias corrections and eps placement are the course's",
                'return torch.optim.Adam(groups, lr=lr, betas=(hp["beta1"], hp["beta2"]), eps=hp["epsilon"])',
            ]
        branches.append(f'    if hp["optimizer"] == {name!r}:\n' + "\n".join(f"        {line}" for line in body))
    return "\n".join(branches)


def pytorch_snippet(config, changes=None, *, source=None):
    """PyTorch code for ``config``'s network, optimizer, decay and recorded changes (see the module docstring).

    The module defines build_model(n_features, n_classes), build_optimizer(model, hp),
    build_scheduler(opt, n_train, done=0), alpha_at(update, n_train) and a training loop
    train(model, X, y, n_updates) with X (n_train, n_features) and y (n_train,) class indices.
    ``source`` names the run in the header (e.g. its folder).
    """
    changes = resolve_changes(config, changes)
    hp = config.hyperparameters
    steps = timeline(config, changes)
    optimizers = {hp.optimizer} | {after.optimizer for _, _, after in steps}
    name, kwargs = torch_optimizer(hp)
    converted = _comment(
        f"At update 1: torch.optim.{name}({_kwargs(kwargs)}), weight_decay={_derived(torch_weight_decay(hp))} "
        f"on the weights (lambd {_num(hp.lambd)} / m {hp.mini_batch_size})."
    )
    activation = TORCH_ACTIVATIONS[config.model.activation]
    hidden_gain = 2.0 if config.model.activation == "relu" else 1.0
    return (
        _header(config, changes, "PyTorch", source, _torch_notes(config))
        + converted
        + "\n"
        + '"""Train like the babysit run: build_model, build_optimizer, build_scheduler, then train()."""\n\n'
        + "import math\n\nimport torch\nfrom torch import nn\n"
        + f"\nDTYPE = {TORCH_DTYPES[config.model.dtype]}"
        + _shared_definitions(config, changes)
        + f'''

def build_model(n_features, n_classes):
    """Linear + {activation[3:]} per hidden layer, then a Linear to n_classes logits (the softmax is in the loss)."""
    widths = (n_features, *LAYERS)
    layers = []
    for n_in, n_out in zip(widths, widths[1:]):
        layers += [nn.Linear(n_in, n_out), {activation}()]
    layers.append(nn.Linear(widths[-1], n_classes))
    model = nn.Sequential(*layers).to(DTYPE)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():  # babysit's initialisation: N(0, gain / n_in), gain 2 (He) or 1 (Xavier); zero biases
        for i, linear in enumerate(linears):
            gain = {hidden_gain!r} if i < len(linears) - 1 else 1.0
            linear.weight.normal_(0.0, math.sqrt(gain / linear.in_features))
            linear.bias.zero_()
    return model


def build_optimizer(model, hp):
    """The optimizer for hyperparameters ``hp``; the weights and the biases in two param groups, so that
    L2 (weight_decay) reaches the weights only. Its lr is the base INITIAL alpha: the LambdaLR scales it."""
    weights = [p for p in model.parameters() if p.dim() > 1]
    biases = [p for p in model.parameters() if p.dim() == 1]
    groups = [
        {{"params": weights, "weight_decay": hp["lambd"] / hp["mini_batch_size"]}},  # lambd/(2m)·Σ‖W‖² → (lambd/m)·W
        {{"params": biases, "weight_decay": 0.0}},
    ]
    lr = INITIAL["alpha"]
{_torch_optimizer_code(optimizers)}
    raise ValueError(f"unknown optimizer {{hp['optimizer']!r}}")


def build_scheduler(opt, n_train, done=0):
    """A LambdaLR to step after every update: once ``done + i`` updates are made, lr = alpha_at(done + i + 1)."""
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: alpha_at(done + i + 1, n_train) / INITIAL["alpha"])


def train(model, X, y, n_updates, seed=0):
    """``n_updates`` mini-batch updates as babysit makes them, on X (n_train, n_features) and y (n_train,)
    class indices; every pass visits the examples in a fresh random order. Returns the optimizer."""
    n_train = X.shape[0]
    generator = torch.Generator().manual_seed(seed)
    loss_fn = nn.CrossEntropyLoss()  # the mean over the mini-batch: the course's (1/m)·Σ
    opt = build_optimizer(model, hyperparams_at(1))
    scheduler = build_scheduler(opt, n_train)
    position, order = 0, None
    for update in range(1, n_updates + 1):
        # the recorded changes LambdaLR cannot carry, at the update they took effect
{_torch_change_code(config, changes)}
        hp = hyperparams_at(update)
        if position == 0:
            order = torch.randperm(n_train, generator=generator)
        batch = order[position : position + hp["mini_batch_size"]]
        opt.param_groups[0]["weight_decay"] = hp["lambd"] / len(batch)  # m = this mini-batch's size
        opt.zero_grad()
        loss_fn(model(X[batch]), y[batch]).backward()
        opt.step()
        scheduler.step()  # after every update: the decay is per epoch but the recorded changes are per update
        position += len(batch)
        if position >= n_train:
            position = 0
    return opt
'''
    )


# -- Keras --------------------------------------------------------------------------------------------------


def _keras_notes(config):
    return [
        "L2: keras.regularizers.L2(x) adds x·Σw² to the batch-mean loss, so x = lambd/(2m) with m the mini-batch "
        "size, on every Dense kernel (not the biases). Exact while m is constant: a pass's last, smaller mini-batch "
        "and recorded changes of lambd or mini_batch_size are not followed.",
        "momentum: Keras keeps v = momentum·v − lr·g and adds v to W, with no (1 − beta) factor: course momentum with "
        "(alpha, beta) is Keras SGD with learning_rate = alpha·(1 − beta), momentum = beta. Exact while alpha is "
        "constant: Keras's v keeps the rates it was built with, while the course multiplies all of v by the alpha "
        "in force.",
        "rmsprop: rho = beta2. Keras adds epsilon inside the square root, lr·g/√(s + ε), the course outside it, "
        "alpha·dW/(√s + ε): epsilon = ε² agrees where s = 0 and where s ≫ ε², and within a factor √2 between.",
        "adam: beta_1 = beta1, beta_2 = beta2. Keras's epsilon is the 'epsilon hat' form, added to √s before the "
        "bias correction: it equals the course's ε·√(1 − beta2^t), so epsilon = ε is exact once beta2^t ≈ 0 and "
        "a slightly larger guard for the first ~1/(1 − beta2) updates.",
        "learning-rate decay (per epoch) and the recorded alpha changes (per update) are one LearningRateSchedule "
        "that looks the rate up by the optimizer's update count; the epoch is counted from n_train and the "
        "mini-batch size, as babysit counts it.",
        "Keras's optimizers read beta, beta1, beta2, epsilon as constants of the compiled train step, and fit() uses "
        "one batch_size: recorded changes of those, of lambd or of the optimizer are listed below as comments.",
        "initial weights are drawn the same way (He normal before relu, Xavier normal otherwise, zero biases), "
        "not the same numbers.",
    ]


def _keras_change_comments(config, changes):
    lines = []
    for step, before, after in timeline(config, changes):
        diff = before.diff(after)
        if not diff:
            continue
        summary = _change_summary(before, after)
        if all(n in RATE_FIELDS for n in diff):
            lines.append(f"update {step}: {summary} (in BabysitSchedule)")
            continue
        name, kwargs = keras_optimizer(after)
        todo = []
        if "optimizer" in diff:
            rest = {k: v for k, v in kwargs.items() if k != "learning_rate"}
            todo.append(f"a fresh keras.optimizers.{name}(learning_rate=schedule, {_kwargs(rest)})".replace(", )", ")"))
        else:
            keys = [KERAS_NAMES[after.optimizer][n] for n in diff if n in KERAS_NAMES[after.optimizer]]
            todo += [f"optimizer.{key} = {_derived(kwargs[key])}" for key in keys]
        if "lambd" in diff or "mini_batch_size" in diff:
            todo.append(f"L2({_derived(keras_l2(after))}) on the kernels")
        if "mini_batch_size" in diff:
            todo.append(f"batch_size={after.mini_batch_size}")
        if not todo:
            lines.append(f"update {step}: {summary} (not used by {after.optimizer})")
            continue
        lines.append(f"update {step}: {summary}: fit to update {step - 1}, then {'; '.join(todo)}; compile, fit on")
    if not lines:
        return "#   (none)\n"
    return "".join(
        "\n".join(textwrap.wrap(line, 116, initial_indent="#   ", subsequent_indent="#     ")) + "\n" for line in lines
    )


def keras_snippet(config, changes=None, *, source=None):
    """Keras 3 code for ``config``'s network, optimizer, decay and recorded changes (see the module docstring).

    The module defines build_model(n_features, n_classes), build_optimizer(schedule), the
    BabysitSchedule(n_train, n_updates) learning-rate schedule and train(model, X, y, n_updates).
    """
    changes = resolve_changes(config, changes)
    hp = config.hyperparameters
    name, kwargs = keras_optimizer(hp)
    rest = {k: v for k, v in kwargs.items() if k != "learning_rate"}
    args = ", ".join(["learning_rate=schedule", *(f"{k}={_derived(v)}" for k, v in rest.items())])
    conversion = {
        "gd": f"W −= alpha·dW with alpha = {_num(hp.alpha)}",
        "momentum": f"momentum = beta = {_lit(hp.beta)}; learning_rate = alpha·(1 − beta) = "
        f"{_num(hp.alpha)}·(1 − {_num(hp.beta)}) = {_derived(kwargs['learning_rate'])} at update 1, in the schedule",
        "rmsprop": f"rho = beta2 = {_lit(hp.beta2)}; epsilon = {_num(hp.epsilon)}² (inside the square root in Keras)",
        "adam": f"beta_1, beta_2 = {_lit(hp.beta1)}, {_lit(hp.beta2)}; epsilon = {_num(hp.epsilon)} as epsilon hat",
    }[hp.optimizer]
    l2 = keras_l2(hp)
    regularizer = (
        f"keras.regularizers.L2({_derived(l2)})  # lambd/(2m) = {_num(hp.lambd)} / (2·{hp.mini_batch_size})"
        if hp.lambd
        else "None  # lambd = 0: no L2 penalty"
    )
    activation = config.model.activation
    hidden_gain = 2.0 if activation == "relu" else 1.0
    floatx = '    keras.config.set_floatx("float64")  # the run\'s dtype\n' if config.model.dtype == "float64" else ""
    return (
        _header(config, changes, "Keras 3", source, _keras_notes(config))
        + _comment(f"At update 1: keras.optimizers.{name}({_kwargs(kwargs)}), kernel_regularizer=L2({_derived(l2)}).")
        + "# The recorded changes, and what following them in Keras takes:\n"
        + _keras_change_comments(config, changes)
        + '"""Train like the babysit run: build_model, then train()."""\n\n'
        + "import keras\n"
        + f"\nBATCH_SIZE = {hp.mini_batch_size}  # the mini-batch size at update 1"
        + _shared_definitions(config, changes)
        + f'''

def keras_learning_rate(update, n_train):
    """The Keras learning rate for ``update``: babysit's alpha, times (1 − beta) for momentum (Keras's v has no
    (1 − beta) factor)."""
    hp = hyperparams_at(update)
    factor = 1.0 - hp["beta"] if hp["optimizer"] == "momentum" else 1.0
    return alpha_at(update, n_train) * factor


class BabysitSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """babysit's decayed alpha with the recorded changes, update by update, looked up by the optimizer's count."""

    def __init__(self, n_train, n_updates):
        self.n_train, self.n_updates = n_train, n_updates
        self.rates = [keras_learning_rate(k, n_train) for k in range(1, n_updates + 1)]

    def __call__(self, step):
        # ``step`` counts the updates made: this is the rate of update step + 1 (the last one holds after the end)
        index = keras.ops.minimum(keras.ops.cast(step, "int32"), self.n_updates - 1)
        return keras.ops.take(keras.ops.convert_to_tensor(self.rates), index)

    def get_config(self):
        return {{"n_train": self.n_train, "n_updates": self.n_updates}}


def build_optimizer(schedule):
    """babysit's {hp.optimizer}: {conversion}."""
    return keras.optimizers.{name}({args})


def build_model(n_features, n_classes):
    """Dense + {activation} for each hidden layer, then a Dense to n_classes logits (the softmax is in the loss)."""
{floatx}    regularizer = {regularizer}
    model = keras.Sequential([keras.Input(shape=(n_features,))])
    for width in LAYERS:  # babysit's initialisation: N(0, gain / n_in), gain 2 (He) or 1 (Xavier); zero biases
        init = keras.initializers.VarianceScaling({hidden_gain!r}, "fan_in", "untruncated_normal")
        model.add(keras.layers.Dense(width, activation={activation!r}, kernel_initializer=init,
                                     kernel_regularizer=regularizer))
    init = keras.initializers.VarianceScaling(1.0, "fan_in", "untruncated_normal")
    model.add(keras.layers.Dense(n_classes, kernel_initializer=init, kernel_regularizer=regularizer))
    return model


def train(model, X, y, n_updates):
    """Compile and fit on X (n_train, n_features) and y (n_train,) class indices for n_updates updates of
    BATCH_SIZE examples, rounded up to whole epochs (fit runs whole passes)."""
    n_train = len(X)
    model.compile(
        optimizer=build_optimizer(BabysitSchedule(n_train, n_updates)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),  # the batch mean, as the course
        metrics=["accuracy"],
    )
    per_pass = -(-n_train // BATCH_SIZE)
    return model.fit(X, y, batch_size=BATCH_SIZE, epochs=-(-n_updates // per_pass), shuffle=True)
'''
    )
