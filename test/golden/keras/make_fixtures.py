"""Golden fixtures for the Keras importer, made by real Keras.

Run twice, once per Keras generation (the legacy set needs a genuine Keras 2, i.e. TensorFlow 2.15):

    KERAS_BACKEND=torch /root/fxenv/bin/python test/golden/keras/make_fixtures.py      # keras 3.x
    /root/tf2env/bin/python test/golden/keras/make_fixtures.py                         # tf.keras 2.15

Each run writes the fixtures of its own generation under test/golden/fixtures/keras-*/ and the
refusal / probe models of that generation under test/fixtures/. Everything is seeded; the
versions used are recorded in each fixture.json ("producer") and in versions-<gen>.json here.

The expected outputs are Keras's own `model.predict` on every prefix of each key's sequence, run on
the model *reloaded from the saved file*, so they check the file as well as the arithmetic.
"""

import json
import os
import platform
import shutil
import sys
from pathlib import Path

os.environ.setdefault('KERAS_BACKEND', 'torch')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / 'test' / 'golden' / 'fixtures'
BAD = ROOT / 'test' / 'fixtures' / 'keras-bad'
PROBE = ROOT / 'test' / 'fixtures' / 'keras-probe'
KERAS3 = keras.__version__.startswith('3.')
TS0 = 1732700000000


def producer() -> str:
    if KERAS3:
        return f'keras {keras.__version__} ({keras.backend.backend()} backend)'
    import tensorflow as tf

    return f'keras {keras.__version__} (tensorflow {tf.__version__})'


def randomize(model: keras.Model, seed: int, scale: float = 0.6) -> None:
    """Non-zero, non-tiny weights everywhere (biases included), so a misplaced gate or bias shows."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, scale, w.shape).astype('float32') for w in model.get_weights()])


def grid(rng: np.random.Generator, shape, scale: float = 1.5) -> np.ndarray:
    """Inputs on a 1/256 grid: exact in float32 and short in JSON."""
    return (np.round(rng.normal(0.0, scale, shape) * 256) / 256).astype('float32')


def schedule(rng: np.random.Generator, keys: int) -> list:
    """Irregular interleaving of `keys` keys, 5–30 steps each; returns [(key, step index)]."""
    lengths = rng.integers(5, 31, size=keys)
    slots = np.concatenate([np.full(n, k) for k, n in enumerate(lengths)])
    rng.shuffle(slots)
    seen = [0] * keys
    order = []
    for k in slots:
        order.append((int(k), seen[k]))
        seen[k] += 1
    return order, [int(n) for n in lengths]


def predict_prefixes(model: keras.Model, seqs: list) -> list:
    """Keras's whole-sequence output for every prefix of a (multi-input) sequence."""
    length = len(seqs[0])
    outs = []
    for t in range(length):
        x = [s[None, : t + 1] for s in seqs]
        y = model.predict(x if len(x) > 1 else x[0], verbose=0)
        outs.append(np.asarray(y, dtype='float32').reshape(-1))
    return outs


def write_fixture(name: str, model: keras.Model, ext: str, inputs: list, seed: int, reset_at=None) -> None:
    """Saves `model`, reloads it, and writes events and Keras's expected outputs.

    inputs: [(input name, width)] in the model's input order; a single-input model uses `features`.
    reset_at: {key index: step index} where the event carries "reset": true.
    """
    folder = FIXTURES / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    model_file = f'model.{ext}'
    model.save(folder / model_file)
    reloaded = keras.models.load_model(folder / model_file, compile=False)

    rng = np.random.default_rng(seed + 1000)
    order, lengths = schedule(rng, 3 + seed % 2)
    reset_at = reset_at or {}
    data = {k: [grid(rng, (n, width)) for _, width in inputs] for k, n in enumerate(lengths)}

    expected = {}
    for k, n in enumerate(lengths):
        cut = reset_at.get(k)
        segments = [(0, n)] if cut is None else [(0, cut), (cut, n)]
        outs = []
        for a, b in segments:
            outs += predict_prefixes(reloaded, [d[a:b] for d in data[k]])
        expected[k] = outs

    ts = TS0
    events, results = [], []
    for k, t in order:
        ts += int(rng.integers(1, 90_000_000))
        key = f'k{k + 1}'
        event = {'key': key, 'ts': ts}
        if len(inputs) == 1:
            event['features'] = [float(v) for v in data[k][0][t]]
        else:
            event['inputs'] = {nm: [float(v) for v in data[k][i][t]] for i, (nm, _) in enumerate(inputs)}
        if reset_at.get(k) == t:
            event['reset'] = True
        events.append(event)
        results.append({'key': key, 'ts': ts, 'output': [float(v) for v in expected[k][t]]})

    out_size = int(results[0]['output'].__len__())
    meta = {
        'name': name,
        'format': 'keras',
        'model': model_file,
        'producer': producer(),
        'oracle': 'keras',
        'tolerance': 1e-5,
        'outputSize': out_size,
    }
    (folder / 'fixture.json').write_text(json.dumps(meta, indent=2) + '\n')
    (folder / 'events.ndjson').write_text(''.join(json.dumps(e) + '\n' for e in events))
    (folder / 'expected.ndjson').write_text(''.join(json.dumps(r) + '\n' for r in results))
    print(f'{name}: {len(events)} events, keys {lengths}')


def seq(width: int, *body) -> keras.Model:
    return keras.Sequential([keras.Input((None, width)), *body])


def seed_recipe(seed: int) -> keras.Model:
    """The seed's model: look_back=3 past intervals, LSTM(tanh), Dropout 0.2, Dense; MSE, RMSprop."""
    m = seq(3, layers.LSTM(8, activation='tanh', name='lstm'), layers.Dropout(0.2, name='dropout'), layers.Dense(1, name='out'))
    randomize(m, seed, 0.4)
    rng = np.random.default_rng(seed)
    x = grid(rng, (64, 6, 3), 1.0)
    y = x.sum(axis=(1, 2))[:, None] / 10
    m.compile(loss='mean_squared_error', optimizer='rmsprop')
    m.fit(x, y, epochs=3, batch_size=16, verbose=0)
    return m


def two_branch(rnn_a, rnn_b, seed: int) -> keras.Model:
    # 'visits' is created first but listed second: the model's input order is what counts.
    visits = keras.Input((None, 2), name='visits')
    purchases = keras.Input((None, 3), name='purchases')
    a = rnn_a(purchases)
    a = layers.Dropout(0.2, name='purchases_dropout')(a)
    b = rnn_b(visits)
    merged = layers.Concatenate(name='merge')([a, b])
    hidden = layers.Dense(5, activation='relu', name='hidden')(merged)
    out = layers.Dense(1, activation='sigmoid', name='out')(hidden)
    m = keras.Model([purchases, visits], out)
    randomize(m, seed)
    return m


def build_keras3() -> None:
    s = 1
    m = seed_recipe(s)
    write_fixture('keras-lstm-regression', m, 'keras', [('features', 3)], s)

    s = 2
    m = seq(3, layers.LSTM(8, name='lstm'), layers.Dense(5, activation='softmax', name='bins'))
    randomize(m, s)
    write_fixture('keras-lstm-softmax5', m, 'keras', [('features', 3)], s)

    s = 3
    m = seq(4, layers.GRU(6, reset_after=True, name='gru'), layers.Dense(2, name='out'))
    randomize(m, s)
    write_fixture('keras-gru-reset-after', m, 'keras', [('features', 4)], s)

    s = 4
    m = seq(4, layers.GRU(6, reset_after=False, name='gru'), layers.Dense(1, activation='tanh', name='out'))
    randomize(m, s)
    write_fixture('keras-gru-reset-before', m, 'keras', [('features', 4)], s)

    s = 5
    m = seq(
        3,
        layers.LSTM(8, return_sequences=True, name='lstm_a'),
        layers.Dropout(0.2, name='dropout'),
        layers.LSTM(6, name='lstm_b'),
        layers.Dense(4, activation='relu', name='hidden'),
        layers.Dense(1, name='out'),
    )
    randomize(m, s)
    write_fixture('keras-lstm-stacked', m, 'keras', [('features', 3)], s)

    s = 6
    m = seq(3, layers.LSTM(8, recurrent_activation='hard_sigmoid', name='lstm'), layers.Dense(2, name='out'))
    randomize(m, s, 1.0)
    write_fixture('keras-lstm-hard-sigmoid', m, 'keras', [('features', 3)], s)
    write_fixture('keras-h5v3-lstm-hard-sigmoid', m, 'h5', [('features', 3)], s)

    s = 7
    m = two_branch(layers.LSTM(6, name='purchases_lstm'), layers.GRU(4, name='visits_gru'), s)
    write_fixture('keras-two-branch', m, 'keras', [('purchases', 3), ('visits', 2)], s)
    write_fixture('keras-h5v3-two-branch', m, 'h5', [('purchases', 3), ('visits', 2)], s)

    s = 8
    m = seq(
        2,
        layers.LSTM(5, use_bias=False, activation='relu', name='lstm'),
        layers.Dense(3, activation='softmax', use_bias=False, name='out'),
    )
    randomize(m, s, 0.5)
    write_fixture('keras-lstm-nobias-reset', m, 'keras', [('features', 2)], s, reset_at={0: 3, 1: 4})

    BAD.mkdir(parents=True, exist_ok=True)
    bi = seq(3, layers.Bidirectional(layers.LSTM(4), name='bi_lstm'), layers.Dense(1))
    bi.save(BAD / 'bidirectional.keras')
    conv = seq(3, layers.Conv1D(4, 2, name='conv'), layers.LSTM(4, name='lstm'), layers.Dense(1))
    conv.save(BAD / 'conv1d.keras')

    write_probes()


def write_probes() -> None:
    """Models whose weights encode their own position, so a test can check every index mapping."""
    PROBE.mkdir(parents=True, exist_ok=True)
    lstm = seq(2, layers.LSTM(3, name='lstm'))
    gru_a = seq(2, layers.GRU(3, reset_after=True, name='gru'))
    gru_b = seq(2, layers.GRU(3, reset_after=False, name='gru'))
    for m, file in ((lstm, 'lstm.keras'), (gru_a, 'gru-reset-after.keras'), (gru_b, 'gru-reset-before.keras')):
        weights = []
        for i, w in enumerate(m.get_weights()):
            # kernel[k, j] = 1000·k + j; recurrent = −(…); bias row r = 100·r + j + 0.5.
            if i < 2:
                rows, cols = np.indices(w.shape)
                weights.append(((1 - 2 * i) * (1000 * rows + cols)).astype('float32'))
            else:
                b = np.arange(w.size, dtype='float32').reshape(w.shape)
                if b.ndim == 2:
                    b = b - np.arange(w.shape[0])[:, None] * w.shape[1] + 100 * np.arange(w.shape[0])[:, None]
                weights.append((b + 0.5).astype('float32'))
        m.set_weights(weights)
        m.save(PROBE / file)


def build_keras2() -> None:
    s = 11
    m = seq(3, layers.LSTM(8, recurrent_activation='hard_sigmoid', name='lstm'), layers.Dense(2, name='out'))
    randomize(m, s, 1.0)
    write_fixture('keras-h5v2-lstm-hard-sigmoid', m, 'h5', [('features', 3)], s)

    s = 12
    m = seq(4, layers.GRU(6, reset_after=False, name='gru'), layers.Dense(1, name='out'))
    randomize(m, s)
    write_fixture('keras-h5v2-gru-reset-before', m, 'h5', [('features', 4)], s)

    s = 13
    m = seq(
        4,
        layers.GRU(6, reset_after=True, return_sequences=True, name='gru'),
        layers.LSTM(5, name='lstm'),
        layers.Dense(5, activation='softmax', name='bins'),
    )
    randomize(m, s)
    write_fixture('keras-h5v2-gru-lstm-stacked', m, 'h5', [('features', 4)], s, reset_at={1: 5})

    s = 14
    m = two_branch(layers.GRU(5, name='purchases_gru'), layers.LSTM(4, name='visits_lstm'), s)
    write_fixture('keras-h5v2-two-branch', m, 'h5', [('purchases', 3), ('visits', 2)], s)

    BAD.mkdir(parents=True, exist_ok=True)
    back = seq(3, layers.LSTM(4, go_backwards=True, name='backwards'), layers.Dense(1))
    back.save(BAD / 'go-backwards-v2.h5')

    # The Keras 2 idiom with no Input: the first layer declares the input shape itself.
    PROBE.mkdir(parents=True, exist_ok=True)
    implicit = keras.Sequential([layers.LSTM(4, input_shape=(None, 3), name='lstm'), layers.Dense(1, name='out')])
    implicit.save(PROBE / 'implicit-input-v2.h5')


def main() -> None:
    keras.utils.set_random_seed(20261127)
    if KERAS3:
        build_keras3()
    else:
        build_keras2()
    versions = {
        'python': platform.python_version(),
        'keras': keras.__version__,
        'backend': keras.backend.backend(),
        'numpy': np.__version__,
    }
    if KERAS3:
        import torch

        versions['torch'] = torch.__version__
    else:
        import tensorflow as tf

        versions['tensorflow'] = tf.__version__
    gen = 'keras3' if KERAS3 else 'keras2'
    (Path(__file__).parent / f'versions-{gen}.json').write_text(json.dumps(versions, indent=2) + '\n')
    print(versions, file=sys.stderr)


if __name__ == '__main__':
    main()
