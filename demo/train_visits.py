"""The demo model: the seed's customer-visit recipe, trained for streaming.

    KERAS_BACKEND=torch /root/fxenv/bin/python demo/train_visits.py              # version 1
    KERAS_BACKEND=torch /root/fxenv/bin/python demo/train_visits.py --version 2  # the retrain

`--version 2` retrains the regression model as the rollout demo's second version (docs/rollout.md):
the same customers, scalers and demo events (the data seed is fixed), another training seed and
more epochs (`--seed`, `--epochs` override them). It writes visits-v2.keras, its spec and expected
outputs, adds its figures to train_visits.json under `visits-v2` and leaves version 1's files alone.

Synthetic customers visit at their own typical interval, with noise, a slow drift and occasional
long gaps; each visit has a basket (spend) and a channel (store, app, web). On every visit the
network predicts the time to the customer's *next* visit, from three features per visit: the
time since the previous visit (derived by cellstream from the events' `ts`), the spend
(standardised) and the channel (one-hot). Two variants, as in the seed:

- `visits.keras`: regression, LSTM(32, tanh) -> Dropout(0.2) -> Dense(1), MSE, RMSprop, inputs
  and target min-max scaled;
- `visits-classes.keras`: the target binned into 0-20, 20-40, 40-60, 60-80, 80-100 days (longer
  gaps fall in the last bin), Dense(5, softmax), categorical cross-entropy, RMSprop.

Streaming: the seed's classic recipe trains on fixed look_back windows, each from a zero state.
cellstream instead carries each key's state over its whole history, one step per event, so the
network must be trained that way: on each customer's whole sequence, with a target at every step
(return_sequences=True; Dense applies per step), and the saved inference model is the same
weights with return_sequences=False. Sequences are post-padded; padding comes after a sequence's
real steps, so it cannot change them, and its steps have zero sample weight.

Writes, under demo/: the two .keras models, their feature specs (*.spec.json), a small events
file (visits.ndjson) and Keras's own per-step outputs on it (visits*.expected.ndjson, from the
models reloaded from their files), the training figures and versions (train_visits.json), and
finally runs `npm run demo:convert` to make the cellstream files. Everything is seeded.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault('KERAS_BACKEND', 'torch')

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

DEMO = Path(__file__).resolve().parent
ROOT = DEMO.parent
SEED = 20241127
DAY_MS = 86_400_000
T0 = int(datetime(2024, 1, 1, tzinfo=timezone.utc).timestamp() * 1000)
CHANNELS = ['store', 'app', 'web']
BINS = ['0-20 days', '20-40 days', '40-60 days', '60-80 days', '80-100 days']
HIDDEN = 32
MAX_VISITS = 32
EPOCHS = 60
# Version 2's training: another seed (initial weights, dropout, shuffling) and more epochs.
V2_SEED = SEED + 1000
V2_EPOCHS = 90


def customer(rng: np.random.Generator, visits: int) -> dict:
    """One customer's visits: ts (ms, whole minutes), spend and channel per visit."""
    typical = rng.uniform(6.0, 75.0)
    prefs = rng.dirichlet([2.0, 1.0, 1.0])
    # App users come back a little sooner.
    typical *= 1.0 - 0.25 * prefs[1]
    drift = rng.normal(0.0, 0.01)
    ts = [T0 + int(rng.uniform(0, 90) * DAY_MS)]
    spend = []
    channel = []
    gap = typical
    for i in range(visits):
        if i > 0:
            gap = typical * np.exp(drift * i) * rng.lognormal(0.0, 0.2)
            if rng.random() < 0.06:
                gap *= rng.uniform(2.0, 3.5)
            ts.append(ts[-1] + int(gap * DAY_MS))
        # A longer absence brings a larger basket.
        spend.append(round(float(20.0 + 0.6 * gap + rng.gamma(4.0, 5.0)), 2))
        channel.append(CHANNELS[rng.choice(3, p=prefs)])
    ts = [t - t % 60_000 for t in ts]
    return {'ts': ts, 'spend': spend, 'channel': channel}


def gaps_days(ts: list) -> np.ndarray:
    """Time since the previous visit, in days; 0 for the first (the spec's `first`)."""
    t = np.asarray(ts, dtype=np.float64)
    return np.concatenate([[0.0], np.diff(t) / DAY_MS])


class Scalers:
    """Fitted on the training set as sklearn's MinMaxScaler / StandardScaler would be."""

    def __init__(self, customers: list):
        gaps = np.concatenate([gaps_days(c['ts']) for c in customers])
        nexts = np.concatenate([gaps_days(c['ts'])[1:] for c in customers])
        spend = np.concatenate([c['spend'] for c in customers])
        self.gap = (float(gaps.min()), float(gaps.max()))
        self.target = (float(nexts.min()), float(nexts.max()))
        self.spend = (float(spend.mean()), float(spend.std()))

    def features(self, c: dict) -> np.ndarray:
        """What cellstream's feature spec computes, in the same order and the same float64 arithmetic."""
        lo, hi = self.gap
        mean, std = self.spend
        gap = (gaps_days(c['ts']) - lo) / (hi - lo)
        spend = (np.asarray(c['spend'], dtype=np.float64) - mean) / std
        onehot = np.asarray([[1.0 if ch == k else 0.0 for k in CHANNELS] for ch in c['channel']])
        return np.column_stack([gap, spend, onehot]).astype('float32')

    def spec(self, output: dict) -> dict:
        return {
            'inputs': {
                'visits': [
                    {
                        'name': 'interval_days',
                        'derived': 'time_since_previous',
                        'unit': 'days',
                        'first': 0,
                        'minmax': {'min': self.gap[0], 'max': self.gap[1]},
                    },
                    {'name': 'spend', 'standard': {'mean': self.spend[0], 'std': self.spend[1]}},
                    {'name': 'channel', 'onehot': CHANNELS},
                ]
            },
            'output': output,
        }


def to_bin(days: np.ndarray) -> np.ndarray:
    return np.minimum((days // 20).astype(int), len(BINS) - 1)


def batch(customers: list, scalers: Scalers):
    """Post-padded inputs, per-step next-interval targets (days) and weights (1 where a next visit exists)."""
    n = len(customers)
    x = np.zeros((n, MAX_VISITS, 5), dtype='float32')
    days = np.zeros((n, MAX_VISITS), dtype='float64')
    w = np.zeros((n, MAX_VISITS), dtype='float32')
    for i, c in enumerate(customers):
        f = scalers.features(c)
        x[i, : len(f)] = f
        nxt = gaps_days(c['ts'])[1:]
        days[i, : len(nxt)] = nxt
        w[i, : len(nxt)] = 1.0
    return x, days, w


def build(kind: str, sequences: bool) -> keras.Model:
    inp = keras.Input((None, 5), name='visits')
    h = layers.LSTM(HIDDEN, activation='tanh', return_sequences=sequences, name='lstm')(inp)
    h = layers.Dropout(0.2, name='dropout')(h)
    if kind == 'regression':
        out = layers.Dense(1, name='next_interval')(h)
    else:
        out = layers.Dense(len(BINS), activation='softmax', name='interval_bin')(h)
    return keras.Model(inp, out, name='visits' if kind == 'regression' else 'visits_classes')


def train(kind: str, train_set, val_set, scalers: Scalers, epochs: int = EPOCHS) -> tuple:
    x, days, w = train_set
    vx, vdays, vw = val_set
    lo, hi = scalers.target
    if kind == 'regression':
        y, vy = ((days - lo) / (hi - lo))[..., None], ((vdays - lo) / (hi - lo))[..., None]
        loss = 'mse'
    else:
        y, vy = np.eye(len(BINS))[to_bin(days)], np.eye(len(BINS))[to_bin(vdays)]
        loss = 'categorical_crossentropy'
    model = build(kind, sequences=True)
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=5e-3), loss=loss)
    hist = model.fit(
        x, y.astype('float32'), sample_weight=w, validation_data=(vx, vy.astype('float32'), vw),
        epochs=epochs, batch_size=64, shuffle=True, verbose=2,
    )
    pred = np.asarray(model.predict(vx, verbose=0), dtype='float64')
    real = vw > 0
    figures = {
        'epochs': epochs,
        'train_loss': float(hist.history['loss'][-1]),
        'val_loss': float(hist.history['val_loss'][-1]),
    }
    # Scored from a customer's second visit on, where the baselines have an interval to go by:
    # the previous interval again, and the customer's mean interval so far.
    steps = np.arange(1, MAX_VISITS + 1)
    scored = real & (steps > 1)
    prev = np.concatenate([np.zeros((len(vx), 1)), vdays[:, :-1]], axis=1)
    gaps = vx[:, :, 0] * (scalers.gap[1] - scalers.gap[0]) + scalers.gap[0]
    running = np.cumsum(gaps, axis=1) / np.maximum(steps - 1, 1)
    if kind == 'regression':
        days_pred = pred[..., 0] * (hi - lo) + lo
        figures['val_mae_days'] = float(np.abs(days_pred - vdays)[scored].mean())
        figures['val_mae_days_incl_first_visit'] = float(np.abs(days_pred - vdays)[real].mean())
        figures['baseline_mae_days_previous_interval'] = float(np.abs(prev - vdays)[scored].mean())
        figures['baseline_mae_days_running_mean'] = float(np.abs(running - vdays)[scored].mean())
        # MSE training aims at the conditional mean, so RMSE is the like-for-like comparison.
        rmse = lambda p: float(np.sqrt(((p - vdays)[scored] ** 2).mean()))  # noqa: E731
        figures['val_rmse_days'] = rmse(days_pred)
        figures['baseline_rmse_days_previous_interval'] = rmse(prev)
        figures['baseline_rmse_days_running_mean'] = rmse(running)
    else:
        truth = to_bin(vdays)
        figures['val_accuracy'] = float((pred.argmax(-1) == truth)[scored].mean())
        figures['val_accuracy_incl_first_visit'] = float((pred.argmax(-1) == truth)[real].mean())
        figures['baseline_accuracy_running_mean_bin'] = float((to_bin(running) == truth)[scored].mean())
        figures['baseline_accuracy_majority_bin'] = float(np.bincount(truth[scored]).max() / scored.sum())
    inference = build(kind, sequences=False)
    inference.set_weights(model.get_weights())
    return inference, figures


def demo_events(rng: np.random.Generator) -> tuple:
    """~20 customers' visits, interleaved in time order as a stream would bring them."""
    customers = {f'customer-{i:02d}': customer(rng, int(rng.integers(8, 26))) for i in range(1, 21)}
    events = []
    for key, c in customers.items():
        for t, s, ch in zip(c['ts'], c['spend'], c['channel']):
            iso = datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
            events.append((t, key, {'key': key, 'ts': iso, 'values': {'spend': s, 'channel': ch}}))
    events.sort(key=lambda e: (e[0], e[1]))
    return customers, events


def expected_outputs(model_path: Path, customers: dict, events: list, scalers: Scalers) -> list:
    """Keras's whole-sequence output for every prefix of each customer, from the reloaded file."""
    model = keras.saving.load_model(model_path)
    per_key = {}
    for key, c in customers.items():
        f = scalers.features(c)
        per_key[key] = [np.asarray(model.predict(f[None, : t + 1], verbose=0), dtype='float32').reshape(-1) for t in range(len(f))]
    seen = {key: 0 for key in customers}
    lines = []
    for t, key, _ in events:
        out = per_key[key][seen[key]]
        seen[key] += 1
        lines.append({'key': key, 'ts': t, 'output': [float(v) for v in out]})
    return lines


def write_ndjson(path: Path, rows: list) -> None:
    path.write_text(''.join(json.dumps(r, separators=(',', ':')) + '\n' for r in rows))


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2) + '\n')


def versions() -> dict:
    import torch

    return {
        'python': platform.python_version(),
        'numpy': np.__version__,
        'keras': keras.__version__,
        'backend': f'{keras.backend.backend()} {torch.__version__}',
    }


def main() -> None:
    parser = argparse.ArgumentParser(description='Train the demo visit-interval models.')
    parser.add_argument('--version', type=int, choices=[1, 2], default=1, help='1: both demo models; 2: the retrained regression model')
    parser.add_argument('--seed', type=int, help=f'training seed (default {SEED} for version 1, {V2_SEED} for 2)')
    parser.add_argument('--epochs', type=int, help=f'epochs (default {EPOCHS} for version 1, {V2_EPOCHS} for 2)')
    args = parser.parse_args()
    v2 = args.version == 2
    train_seed = args.seed if args.seed is not None else (V2_SEED if v2 else SEED)
    epochs = args.epochs if args.epochs is not None else (V2_EPOCHS if v2 else EPOCHS)

    keras.utils.set_random_seed(train_seed)
    import torch

    torch.use_deterministic_algorithms(True)
    # The data always comes from SEED, so every version sees the same customers and scalers.
    rng = np.random.default_rng(SEED)
    population = [customer(rng, int(rng.integers(8, MAX_VISITS + 1))) for _ in range(750)]
    train_customers, val_customers = population[:600], population[600:]
    scalers = Scalers(train_customers)
    train_set, val_set = batch(train_customers, scalers), batch(val_customers, scalers)

    lo, hi = scalers.target
    regression = {'kind': 'regression', 'name': 'next_interval_days', 'inverse': {'minmax': {'min': lo, 'max': hi}}}
    customers, events = demo_events(np.random.default_rng(SEED + 1))
    if v2:
        train_version_2(train_set, val_set, scalers, regression, customers, events, train_seed, epochs)
        return
    variants = {
        'visits': ('regression', regression),
        'visits-classes': ('classes', {'kind': 'classes', 'labels': BINS}),
    }
    write_ndjson(DEMO / 'visits.ndjson', [e for _, _, e in events])
    figures = {}
    for stem, (kind, output) in variants.items():
        model, figures[stem] = train(kind, train_set, val_set, scalers)
        model.save(DEMO / f'{stem}.keras')
        write_json(DEMO / f'{stem}.spec.json', scalers.spec(output))
        write_ndjson(DEMO / f'{stem}.expected.ndjson', expected_outputs(DEMO / f'{stem}.keras', customers, events, scalers))
        print(stem, json.dumps(figures[stem]))

    write_json(
        DEMO / 'train_visits.json',
        {
            'seed': SEED,
            'customers': {'train': len(train_customers), 'validation': len(val_customers), 'demo': len(customers)},
            'demo_events': len(events),
            'figures': figures,
            'versions': versions(),
        },
    )
    subprocess.run(['npm', 'run', '--silent', 'demo:convert'], cwd=ROOT, check=True, stdout=sys.stdout)


def train_version_2(train_set, val_set, scalers: Scalers, regression: dict, customers: dict, events: list, seed: int, epochs: int) -> None:
    """visits-v2: the regression model retrained; version 1's files and figures are kept as they are."""
    model, figures = train('regression', train_set, val_set, scalers, epochs)
    model.save(DEMO / 'visits-v2.keras')
    write_json(DEMO / 'visits-v2.spec.json', scalers.spec(regression))
    write_ndjson(DEMO / 'visits-v2.expected.ndjson', expected_outputs(DEMO / 'visits-v2.keras', customers, events, scalers))
    print('visits-v2', json.dumps(figures))
    record_path = DEMO / 'train_visits.json'
    record = json.loads(record_path.read_text())
    record['visits-v2'] = {'training_seed': seed, 'figures': figures, 'versions': versions()}
    write_json(record_path, record)
    subprocess.run(['npm', 'run', '--silent', 'demo:convert'], cwd=ROOT, check=True, stdout=sys.stdout)


if __name__ == '__main__':
    main()
