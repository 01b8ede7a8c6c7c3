export { parseOnnxModel } from './import.js';
