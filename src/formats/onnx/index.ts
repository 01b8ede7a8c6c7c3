/** ONNX importer: LSTM/GRU graphs as `torch.onnx.export` and onnx.helper write them. */
export { parseOnnxModel } from './import.js';
export { loadOnnxModel } from './load.js';
