"""Write a random scenario and the desired states it uses, for held-out runs.

usage: random-scenario.py SEED OUT_DIR   (SHIPPED=1: start from desired-state/)

OUT_DIR gets scenario.yaml, ds/ (the desired state the run starts from) and
ds2/ (the one a `desiredState` event switches to). scripts/random-scenarios.sh
plays many of them with `ballast simulate` and lists those that fail a request.
The declared propagationLag is always at or above the simulated one, and the
Capacity declares ballast's termination hook: every request lost is then one
ballast should have kept.
"""
import random, sys, os
seed=int(sys.argv[1]); out=sys.argv[2]
REPO=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
r=random.Random(seed)
os.makedirs(out+"/ds",exist_ok=True); os.makedirs(out+"/ds2",exist_ok=True)
def service(mn,mx,minh,dereg,cc,fixed=None,lag=None,scale_in_step='"100%"',window="5m",target=60,tc=None):
    tasks = f"    count: {fixed}\n" if fixed is not None else f"    min: {mn}\n    max: {mx}\n"
    mh = f"      minHealthy: {minh}\n" if minh is not None else ""
    pl = f"      propagationLag: {lag}\n" if lag else ""
    scaling = "" if fixed is not None else f"""  scaling:
    cpu:
      targetCpu: {target}
      scaleOut:
        threshold: {target+6}
        period: 1m
        cooldown: 1m
      scaleIn:
        threshold: {target-6}
        period: 1m
        step: {scale_in_step}
        cooldown: {r.choice(['1m','3m','5m'])}
      stabilizationWindow: {window}
"""
    return f"""apiVersion: ballast.dev/v1alpha1
kind: Service
metadata:
  name: app
spec:
  region: us-east-2
  cluster: appCluster
  service: appService
  tasks:
{tasks}  targetGroups:
    - targetGroup: frontendTargetGroup
      containerName: appContainer
      containerPort: 80
{mh}{pl}    - targetGroup: backendTargetGroup
      containerName: appContainer
      containerPort: 8000
{mh}{pl}{scaling}  budget:
    maxDeregistrationsPerPass: {dereg}
    maxCountChangePerPass: {cc}
"""
def zone_b():
    return r.choice(['onDemand\n      whenInstancesAbove: '+str(r.choice([1,2,3])),'alwaysOn'])
def capacity(mx,tpi,above,cool,mcp,hook):
    hk = "  terminationHook:\n    heartbeatTimeout: 10m\n" if hook else ""
    return f"""apiVersion: ballast.dev/v1alpha1
kind: Capacity
metadata:
  name: app-capacity
spec:
  region: us-east-2
  cluster: appCluster
  autoScalingGroup: ecsAutoScalingGroup
  minInstances: 1
  maxInstances: {mx}
  tasksPerInstance: {tpi}
  headroom: {r.choice([0,0,1])}
  scaleInCooldown: {cool}
  maxChangePerPass: {mcp}
  zones:
    - subnet: subnet-0a1b2c3d4e5f60001
      zone: us-east-2a
      mode: alwaysOn
    - subnet: subnet-0a1b2c3d4e5f60002
      zone: us-east-2b
      mode: {zone_b()}
    - subnet: subnet-0a1b2c3d4e5f60003
      zone: us-east-2c
      mode: onDemand
      whenInstancesAbove: {r.choice([3,4])}
{hk}"""
fixed = r.random()<0.25
mn=r.choice([1,2,3]); mx=r.choice([6,8,10])
minh=r.choice([None,0,1,2])
if minh is not None and minh>mn: minh=mn
tpi=r.choice([1,1,2])
lag=r.choice([None,None,"3m"])
def svc(fixed_count=None):
    return service(mn,mx,minh,r.choice([1,2,3]),r.choice([1,2,4]),fixed=fixed_count,lag=lag,scale_in_step=r.choice(['"100%"','1','2','"50%"']),window=r.choice(["1m","5m"]),target=r.choice([50,60,70]))
hook=True
open(out+"/ds/app.yaml","w").write(svc(r.choice([2,3,4]) if fixed else None))
open(out+"/ds/capacity.yaml","w").write(capacity(max(mx, 10)//tpi+1, tpi, 2, r.choice(['2m','5m']), r.choice([1,2,3]), hook))
open(out+"/ds2/app.yaml","w").write(svc(r.choice([2,3,5]) if (fixed or r.random()<0.3) else None))
open(out+"/ds2/capacity.yaml","w").write(capacity(max(mx, 10)//tpi+1, tpi, 2, r.choice(['2m','5m']), r.choice([1,2,3]), hook))
dur=r.choice([60,90,120])
pts=[]; t=0
while t<dur:
    pts.append((t, r.choice([20,40,100,150,200,300,400])))
    t+=r.choice([5,10,15,20,30])
shape=r.choice(["points","steps"])
load="".join(f"        - {{at: {a}m, rps: {b}}}\n" for a,b in pts)
evs=[]
for _ in range(r.randint(1,5)):
    at=r.randint(5,dur-10)
    k=r.choice(["deploy","terminate","restart","actor","outage","edit","deploy","terminate"])
    if k=="deploy": evs.append(f"    - at: {at}m\n      deploy: {{service: app}}\n")
    elif k=="terminate": evs.append(f"    - at: {at}m\n      terminateInstance: {{count: {r.choice([1,1,2])}}}\n")
    elif k=="restart": evs.append(f"    - at: {at}m{r.randint(0,59)}s\n      restartController: {{}}\n")
    elif k=="actor": evs.append(f"    - at: {at}m\n      actor: {{service: app, desiredCount: {r.choice([1,2,5,8])}}}\n")
    elif k=="outage": evs.append(f"    - at: {at}m\n      outage: {{duration: {r.choice(['30s','2m','5m'])}}}\n")
    elif k=="edit": evs.append(f"    - at: {at}m\n      desiredState: ds2\n")
aws=[]
aws.append(f"    deregistrationPropagationLag: {r.choice(['0s','30s','60s','120s'])}\n")
aws.append(f"    deregistrationDelay: {r.choice(['30s','120s','300s'])}\n")
if r.random()<0.5:
    mhp,mxp=r.choice([(0,100),(50,100),(100,200),(50,200),(0,200)])
    aws.append(f"    minimumHealthyPercent: {mhp}\n    maximumPercent: {mxp}\n")
if r.random()<0.3: aws.append(f"    healthCheckInterval: {r.choice(['10s','30s'])}\n    healthyThreshold: {r.choice([2,3,5])}\n")
if r.random()<0.3: aws.append(f"    taskStartDelay: {r.choice(['10s','60s'])}\n")
if r.random()<0.3: aws.append(f"    consistencyLag: {r.choice(['1s','5s','20s'])}\n")
open(out+"/scenario.yaml","w").write(f"""apiVersion: ballast.dev/v1alpha1
kind: Scenario
metadata:
  name: fuzz-{seed}
spec:
  duration: {dur}m
  seed: {r.randint(1,10**6)}
  load:
    - service: app
      {shape}:
{load}  aws:
{''.join(aws)}  events:
{''.join(evs)}""")
if os.environ.get("SHIPPED"):
    import shutil
    for f in ("app.yaml","capacity.yaml"):
        shutil.copy(os.path.join(REPO,"desired-state",f), out+"/ds/"+f)
        shutil.copy(os.path.join(REPO,"desired-state",f), out+"/ds2/"+f)
    s=open(out+"/ds2/app.yaml").read().replace("min: 2","min: %d" % r.choice([1,3,4])).replace("max: 10","max: %d" % r.choice([6,8,10]))
    open(out+"/ds2/app.yaml","w").write(s)
