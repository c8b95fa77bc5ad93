export { integration as default } from './jest.config.js';
