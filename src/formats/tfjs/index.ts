/** TF.js layers-format (`model.json` + binary weight shards) importer. */
export { importTfjsLayers } from './import.js';
export { loadTfjsModel } from './load.js';
