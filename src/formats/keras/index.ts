export { type KerasFileKind, loadKerasModel, parseKerasModel, sniffKind } from './import.js';
