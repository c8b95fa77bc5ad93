export { unit as default } from './jest.config.js';
