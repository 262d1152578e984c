// Node.js globals and modules for TypeScript programs run by SoulBox.
// Debian 12 does not package @types/node, so Node's APIs are declared
// loosely: every module import and these globals are typed `any`.
declare var require: any;
declare var module: any;
declare var exports: any;
declare var process: any;
declare var Buffer: any;
declare var __dirname: string;
declare var __filename: string;
declare var global: any;
declare function setImmediate(cb: (...args: any[]) => void, ...args: any[]): any;
declare module "*";
