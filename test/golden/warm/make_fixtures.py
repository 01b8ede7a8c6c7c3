"""Golden fixtures for warm start (test/golden/warm.test.ts), made by real Keras:

    KERAS_BACKEND=torch /root/fxenv/bin/python test/golden/warm/make_fixtures.py

Each fixture is an archive of past events (history.ndjson), one next event per key (next.ndjson),
and what Keras computes when it runs the model over each key's whole history at once: the
recurrent state after the history (every layer's h, and C for an LSTM, in cellstream's layout:
layer by layer, h then C) and the output for the history followed by the next event. A warmed
key's state and its next prediction must equal them. A `reset: true` event starts a key's
sequence over, so Keras runs the events from the last reset on.

- `stacked-lstm-gru`: a seeded random LSTM(6) -> GRU(5, reset_after) -> Dense(2) over `features`,
  with a reset in one key's history;
- `demo-visits-v2`: demo/visits-v2.keras (the retrained demo model, docs/rollout.md) over the demo
  archive demo/visits.ndjson, named `values` encoded by its spec (the interval derived from `ts`,
  which crosses from the history into the next event).

The expected values come from the models reloaded from their saved files. Everything is seeded.
"""

import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault('KERAS_BACKEND', 'torch')

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent / 'fixtures'
DEMO = ROOT / 'demo'
TS0 = 1732700000000
DAY_MS = 86_400_000


def producer() -> str:
    return f'keras {keras.__version__} ({keras.backend.backend()} backend)'


def recurrent_layers(model: keras.Model) -> list:
    return [l for l in model.layers if isinstance(l, (layers.LSTM, layers.GRU))]


def final_state(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """Keras's state after `x` (steps, features): each recurrent layer run with return_state, in order."""
    h = keras.ops.convert_to_tensor(x[None])
    parts = []
    for layer in recurrent_layers(model):
        config = layer.get_config()
        config.update(return_sequences=True, return_state=True, name=None)
        twin = type(layer).from_config(config)
        twin.build(tuple(h.shape))
        twin.set_weights(layer.get_weights())
        out = twin(h)
        h = out[0]
        # LSTM: [sequence, h, c]; GRU: [sequence, h]. cellstream keeps h, then C.
        parts += [np.asarray(keras.ops.convert_to_numpy(s), dtype='float32').reshape(-1) for s in out[1:]]
    return np.concatenate(parts)


def since_reset(events: list) -> list:
    start = max([i for i, e in enumerate(events) if e.get('reset')], default=0)
    return events[start:]


def write(name: str, model_file: Path, history: list, nxt: list, encode, spec: str | None = None) -> None:
    folder = HERE / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copyfile(model_file, folder / 'model.keras')
    model = keras.saving.load_model(folder / 'model.keras', compile=False)
    if spec is not None:
        shutil.copyfile(DEMO / spec, folder / 'spec.json')
    keys = {}
    for event in history:
        keys.setdefault(event['key'], []).append(event)
    expected = {}
    for key, events in keys.items():
        run = since_reset(events)
        x = encode(run)
        follow = [e for e in nxt if e['key'] == key][0]
        x_next = encode(run + [follow])
        output = np.asarray(model.predict(x_next[None], verbose=0), dtype='float32').reshape(-1)
        expected[key] = {
            'warmedFrom': len(run),
            'state': [float(v) for v in final_state(model, x)],
            'next': [float(v) for v in output],
        }
    meta = {
        'name': name,
        'model': 'model.keras',
        'spec': 'spec.json' if spec is not None else None,
        'producer': producer(),
        'oracle': 'keras',
        'tolerance': 1e-5,
        'keys': expected,
    }
    (folder / 'fixture.json').write_text(json.dumps(meta, indent=1) + '\n')
    (folder / 'history.ndjson').write_text(''.join(json.dumps(e) + '\n' for e in history))
    (folder / 'next.ndjson').write_text(''.join(json.dumps(e) + '\n' for e in nxt))
    print(f'{name}: {len(history)} history events, {len(keys)} keys')


def stacked() -> None:
    keras.utils.set_random_seed(7)
    inp = keras.Input((None, 3), name='x')
    h = layers.LSTM(6, return_sequences=True, name='lstm')(inp)
    h = layers.GRU(5, reset_after=True, name='gru')(h)
    out = layers.Dense(2, activation='sigmoid', name='head')(h)
    model = keras.Model(inp, out, name='warm_stacked')
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0.0, 0.6, w.shape).astype('float32') for w in model.get_weights()])
    tmp = HERE / 'stacked.keras'
    HERE.mkdir(parents=True, exist_ok=True)
    model.save(tmp)

    # Irregularly interleaved keys of 5 to 40 events, on a 1/256 grid (exact in float32 and JSON).
    lengths = rng.integers(5, 41, size=6)
    slots = np.concatenate([np.full(n, k) for k, n in enumerate(lengths)])
    rng.shuffle(slots)
    seen = [0] * len(lengths)
    history = []
    ts = TS0
    for k in slots:
        ts += int(rng.integers(1, 90_000_000))
        event = {'key': f'k{k + 1}', 'ts': ts, 'features': [float(v) for v in np.round(rng.normal(0, 1.5, 3) * 256) / 256]}
        # Key k3 starts over at its 4th event.
        if k == 2 and seen[k] == 3:
            event['reset'] = True
        seen[k] += 1
        history.append(event)
    nxt = []
    for k in range(len(lengths)):
        ts += 60_000
        nxt.append({'key': f'k{k + 1}', 'ts': ts, 'features': [float(v) for v in np.round(rng.normal(0, 1.5, 3) * 256) / 256]})

    def encode(events: list) -> np.ndarray:
        return np.asarray([e['features'] for e in events], dtype='float32')

    write('stacked-lstm-gru', tmp, history, nxt, encode)
    tmp.unlink()


def demo_v2() -> None:
    spec = json.loads((DEMO / 'visits-v2.spec.json').read_text())
    interval, spend, channel = spec['inputs']['visits']

    def ms(ts) -> int:
        return int(datetime.strptime(ts, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=timezone.utc).timestamp() * 1000)

    def encode(events: list) -> np.ndarray:
        """The spec's encoding, in its float64 arithmetic: interval in days (0 first), min-max; spend standardised; channel one-hot."""
        rows = []
        prev = None
        for e in events:
            t = ms(e['ts'])
            days = interval['first'] if prev is None else (t - prev) / DAY_MS
            prev = t
            lo, hi = interval['minmax']['min'], interval['minmax']['max']
            s = spend['standard']
            rows.append(
                [(days - lo) / (hi - lo), (e['values']['spend'] - s['mean']) / s['std']]
                + [1.0 if e['values']['channel'] == c else 0.0 for c in channel['onehot']]
            )
        return np.asarray(rows, dtype=np.float64).astype('float32')

    history = [json.loads(l) for l in (DEMO / 'visits.ndjson').read_text().splitlines() if l.strip()]
    rng = np.random.default_rng(20241127 + 7)
    last = {}
    for e in history:
        last[e['key']] = ms(e['ts'])
    nxt = []
    for key in sorted(last):
        t = last[key] + int(rng.uniform(3, 60) * DAY_MS)
        t -= t % 60_000
        iso = datetime.fromtimestamp(t / 1000, tz=timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        nxt.append({'key': key, 'ts': iso, 'values': {'spend': round(float(rng.uniform(20, 120)), 2), 'channel': ['store', 'app', 'web'][int(rng.integers(3))]}})
    write('demo-visits-v2', DEMO / 'visits-v2.keras', history, nxt, encode, spec='visits-v2.spec.json')


if __name__ == '__main__':
    stacked()
    demo_v2()
