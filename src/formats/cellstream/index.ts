export { loadCellstreamManifest, MANIFEST_SUFFIX, saveCellstreamModel } from './files.js';
export { decodeModel, encodeModel, FORMAT_VERSION, isManifest, type Manifest } from './manifest.js';
