#!/usr/bin/env node
import { installCleanupHandlers } from '../checkpoint/cleanup.js';
import { runCli } from './main.js';

installCleanupHandlers();
await runCli(process.argv.slice(2));
