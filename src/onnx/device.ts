/** Where a model's graph runs: onnxruntime's CPU execution provider, or its bundled WebGPU one (Dawn: Vulkan, D3D12, Metal). */
export type Device = 'cpu' | 'webgpu';

export const DEVICES: readonly Device[] = ['cpu', 'webgpu'];
